"""The publisher after the broker closed its channel: a publish to an exchange deleted since it was
looked up is refused with a channel error (404), which closes the channel but not the connection."""

import uuid

import aio_pika
import pytest

from shared.publishing import NotConfirmed, Publisher
from tests import settings as test_settings

pytestmark = pytest.mark.rabbit


async def test_a_channel_the_broker_closed_is_replaced_and_publishing_goes_on(vhost: str) -> None:
    """Found on a fresh machine: the worker's publisher kept the closed channel's exchanges, so after
    the dead-letter exchange was deleted and declared again every publish (events, replies, dead
    letters) failed with ChannelInvalidStateError until the worker restarted."""
    name = f"test.publisher.{uuid.uuid4().hex}"
    admin = await aio_pika.connect(test_settings.RABBIT_URL)
    publisher = Publisher(test_settings.RABBIT_URL, "test-publisher", timeout_s=5)
    try:
        channel = await admin.channel()
        queue = await channel.declare_queue(name, auto_delete=True)

        async def declare() -> None:
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, auto_delete=False)
            await queue.bind(exchange)

        async def publish(body: bytes) -> None:
            await publisher.publish(aio_pika.Message(body), exchange=name, routing_key="")

        await declare()
        await publish(b"1")
        await channel.exchange_delete(name)
        with pytest.raises(NotConfirmed, match="NOT_FOUND|closed"):
            await publish(b"lost")
        await declare()
        await publish(b"2")
        received = [(await queue.get(timeout=5)).body for _ in range(2)]
        assert received == [b"1", b"2"]
        await channel.exchange_delete(name)
    finally:
        await publisher.close()
        await admin.close()
