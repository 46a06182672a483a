"""What the worker sends: events in commit order, outcomes to the reply queue that asked, dead letters."""

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.contracts.commands import SCHEMA_VERSION
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.contracts.outcomes import Outcome
from shared.logging import HEADER_REQUEST_ID
from shared.publishing import DEFAULT_EXCHANGE, Publisher
from shared.topology import DEAD_LETTER_EXCHANGE_NAME, HEADER_SCHEMA_VERSION
from worker.outbox import OutboxRow

log = logging.getLogger(__name__)

HEADER_DEATH_REASON = "x-death-reason"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"
HEADER_ORIGINAL_USER_ID = "x-original-user-id"  # user_id itself must be ours: the broker validates it


class Outbound:
    """One publisher (connection and confirming channel) for everything the worker sends."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    async def events(self, rows: Sequence[OutboxRow]) -> None:
        """Publish events persistent and confirmed, in the order given (one channel keeps call order).

        Not mandatory: an event nobody subscribed to is simply dropped.
        """
        sends = [
            self.publisher.publish(_event_message(row), exchange=EVENTS_EXCHANGE_NAME, routing_key=row.name,
                                   mandatory=False)
            for row in rows
        ]  # fmt: skip
        await asyncio.gather(*sends)

    async def reply_all(self, replies: Sequence[tuple[str | None, Outcome]]) -> None:
        """Best effort: a gateway that went away just stops waiting; the inbox keeps the outcome."""
        sends = [self._reply(reply_to, outcome) for reply_to, outcome in replies if reply_to]
        for failure in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(failure, Exception):
                log.warning("reply not sent: %r", failure)

    async def _reply(self, reply_to: str, outcome: Outcome) -> None:
        message = aio_pika.Message(
            outcome.model_dump_json().encode(),
            content_type="application/json",
            correlation_id=str(outcome.command_id),
        )
        await self.publisher.publish(message, exchange=DEFAULT_EXCHANGE, routing_key=reply_to, mandatory=False)

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Publish a copy to the dead-letter exchange with the reason; the original is acked after."""
        log.warning("dead-lettering %s (%s): %s", message.message_id, message.routing_key, reason)
        headers: dict[str, Any] = dict(message.headers or {})
        headers[HEADER_DEATH_REASON] = reason[:2000]
        headers[HEADER_ORIGINAL_ROUTING_KEY] = message.routing_key or ""
        headers[HEADER_ORIGINAL_USER_ID] = message.user_id or ""
        copy = aio_pika.Message(
            message.body,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            reply_to=message.reply_to,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
        )
        await self.publisher.publish(copy, exchange=DEAD_LETTER_EXCHANGE_NAME, routing_key=message.routing_key or "")


def _event_message(row: OutboxRow) -> aio_pika.Message:
    return aio_pika.Message(
        json.dumps(row.payload, separators=(",", ":")).encode(),  # written as Event.model_dump(mode="json")
        message_id=str(row.payload["event_id"]),
        correlation_id=str(row.command_id),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={
            HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION),
            "x-command-id": str(row.command_id),
            HEADER_REQUEST_ID: row.payload.get("request_id") or "",
        },
    )
