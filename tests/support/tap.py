"""A queue bound to every command routing key: shows what the gateway published."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika

from shared.topology import COMMANDS_EXCHANGE_NAME
from tests import settings as test_settings


class Tap:
    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self.queue = queue

    async def count(self) -> int:
        """Messages published since the tap was opened (publishes are confirmed before 202)."""
        declared = await self.queue.channel.declare_queue(self.queue.name, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def drain(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """The messages published so far, taken off the tap."""
        taken = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        return taken


@asynccontextmanager
async def tap_commands() -> AsyncIterator[Tap]:
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        queue = await channel.declare_queue(f"test.tap.{uuid.uuid4().hex}", exclusive=True)
        await queue.bind(exchange, routing_key="#")
        yield Tap(queue)
