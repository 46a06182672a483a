"""A queue bound to every event: what the worker told the world, in the order it arrived."""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika

from shared.contracts.events import EVENTS_EXCHANGE_NAME
from tests import settings as test_settings


class EventTap:
    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self.queue = queue
        self.events: list[dict[str, Any]] = []

    async def drain(self) -> list[dict[str, Any]]:
        """Everything that arrived so far (appended to self.events), in arrival order."""
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.events.append(json.loads(message.body))
        return self.events


@asynccontextmanager
async def tap_events() -> AsyncIterator[EventTap]:
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE_NAME, "topic", durable=True)
        queue = await channel.declare_queue(f"test.events.{uuid.uuid4().hex}", exclusive=True)
        await queue.bind(exchange, routing_key="#")
        yield EventTap(queue)
