"""The event log: a RabbitMQ stream bound to the events exchange with `#`, so it keeps every event.

The relay publishes a partition's events on one channel in commit order, and the broker appends
what it routes in the order it arrives: the log holds each owner's events in the order they were
applied, as a bound queue receives them. Unlike a queue it is not consumed away: a reader starts at
any offset (`first`, `last`, `next`, an offset, a timestamp) and keeps its own place.

Its retention is a policy, not declaration arguments: a stream re-declared with another `x-max-age`
is refused (PRECONDITION_FAILED), whereas a policy changes in place, keeping the log.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

EVENT_LOG_NAME = "opengovfood.events.log"
EVENT_LOG_BINDING_KEY = "#"  # every event, whatever its name
EVENT_LOG_ARGUMENTS: dict[str, Any] = {"x-queue-type": "stream"}
EVENT_LOG_POLICY = "opengovfood-event-log-retention"
# Above the default 0 so that a catch-all policy of the operator's does not replace it (one policy
# applies to a queue: the highest priority).
EVENT_LOG_POLICY_PRIORITY = 10
STREAM_OFFSET = "x-stream-offset"  # the consumer argument that picks the start, and each delivery's header
# A stream consumer over AMQP 0-9-1 must have a prefetch and ack: the broker refuses it otherwise.
READER_PREFETCH = 1_000


def retention_policy(max_age: str, max_bytes: int) -> dict[str, Any]:
    """The policy (management API body) that keeps the log at most `max_age` old and `max_bytes` big."""
    return {
        "pattern": f"^{re.escape(EVENT_LOG_NAME)}$",
        "apply-to": "queues",
        "priority": EVENT_LOG_POLICY_PRIORITY,
        "definition": {"max-age": max_age, "max-length-bytes": max_bytes},
    }


def stream_start(text: str) -> str | int | datetime:
    """`first`, `last`, `next`, an offset (an integer) or a timestamp (ISO 8601; UTC if no zone given),
    as the `x-stream-offset` consumer argument takes it (a timestamp counts to the second)."""
    if text in ("first", "last", "next"):
        return text
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not first, last, next, an offset or an ISO 8601 timestamp: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LogEntry:
    """One event as the log holds it: its offset in the log, routing key, headers and JSON body."""

    offset: int
    routing_key: str
    headers: dict[str, Any]
    body: bytes


async def read_log(
    channel: AbstractChannel, start: str | int | datetime, idle_s: float | None = None
) -> AsyncIterator[LogEntry]:
    """The log's events from `start` on, in log order; with `idle_s`, it ends once the broker has
    delivered nothing for that long (the end of the log, as far as a reader can tell), else it follows.

    Keeping the offset is the reader's job: resume at `entry.offset + 1`."""
    await channel.set_qos(prefetch_count=READER_PREFETCH)
    queue = await channel.get_queue(EVENT_LOG_NAME, ensure=False)  # looked up by name: readers may not declare
    delivered: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
    channel.close_callbacks.add(lambda *_: delivered.put_nowait(None))  # None: no more will come
    tag = await queue.consume(delivered.put, arguments={STREAM_OFFSET: start})
    try:
        while True:
            try:
                message = await asyncio.wait_for(delivered.get(), idle_s)
            except TimeoutError:
                return
            if message is None:
                raise ConnectionError("the channel to the event log closed")
            await message.ack()  # on a stream an ack only makes room in the prefetch window
            headers = dict(message.headers)
            offset = headers[STREAM_OFFSET]
            if not isinstance(offset, int):  # RabbitMQ sets it on every delivery from a stream
                raise TypeError(f"{STREAM_OFFSET} is {offset!r}: not a delivery from a stream")
            yield LogEntry(offset, message.routing_key or "", headers, message.body)
    finally:
        if not channel.is_closed:
            await queue.cancel(tag)
