"""What the worker sends: events in commit order, outcomes to the reply queue that asked, dead letters.

Outcomes go through the default exchange, which reaches any queue by name, and `reply_to` is the
publisher's to choose: unchecked, a service granted one command type could drop outcome messages
into partition queues, event queues or another service's queue. So an outcome goes only to a reply
queue of whoever published the command, as the broker validated it (`user_id`): the gateway's
`opengovfood.replies.<hex>`, or `<bus user>.replies.<anything>`, which a provisioned service may
declare and read. Any other `reply_to` gets no reply, a warning and a count.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.contracts.commands import SCHEMA_VERSION
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.contracts.headers import (
    HEADER_COMMAND_ID,
    HEADER_DEATH_REASON,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_ORIGINAL_USER_ID,
    HEADER_REQUEST_ID,
    HEADER_SCHEMA_VERSION,
)
from shared.contracts.outcomes import Outcome
from shared.publishing import DEFAULT_EXCHANGE, Publisher
from shared.topology import DEAD_LETTER_EXCHANGE_NAME, GATEWAY_REPLY_QUEUE, service_reply_prefix
from worker.metrics import REPLIES_REFUSED
from worker.outbox import OutboxRow

log = logging.getLogger(__name__)


def may_reply_to(reply_to: str, bus_user: str | None, gateway_bus_user: str) -> bool:
    """Is `reply_to` a reply queue of the command's publisher (`bus_user`, validated by the broker)?"""
    if not bus_user:
        return False
    if bus_user == gateway_bus_user and GATEWAY_REPLY_QUEUE.fullmatch(reply_to):
        return True
    prefix = service_reply_prefix(bus_user)
    return reply_to.startswith(prefix) and len(reply_to) > len(prefix)


class Outbound:
    """One publisher (connection and confirming channel) for everything the worker sends."""

    def __init__(self, publisher: Publisher, gateway_bus_user: str) -> None:
        self.publisher = publisher
        self.gateway_bus_user = gateway_bus_user

    async def events(self, rows: Sequence[OutboxRow]) -> None:
        """Publish events persistent and confirmed, in the order given (one channel keeps call order).

        Not mandatory: an event nobody subscribed to is simply dropped.
        """
        sends = [
            self.publisher.publish(event_message(row), exchange=EVENTS_EXCHANGE_NAME, routing_key=row.name,
                                   mandatory=False)
            for row in rows
        ]  # fmt: skip
        await asyncio.gather(*sends)

    async def reply_all(self, replies: Sequence[tuple[str | None, str | None, Outcome]]) -> None:
        """(publisher's bus user, reply_to, outcome) each. Best effort: a gateway that went away just
        stops waiting; the inbox keeps the outcome."""
        sends = [
            self._reply(reply_to, outcome)
            for bus_user, reply_to, outcome in replies
            if reply_to and self._allowed(reply_to, bus_user, outcome)
        ]
        for failure in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(failure, Exception):
                log.warning("reply not sent: %r", failure)

    def _allowed(self, reply_to: str, bus_user: str | None, outcome: Outcome) -> bool:
        if may_reply_to(reply_to, bus_user, self.gateway_bus_user):
            return True
        REPLIES_REFUSED.labels(outcome.name).inc()
        log.warning(
            "reply refused: %r is not a reply queue of %r (command %s, %s)",
            reply_to, bus_user, outcome.command_id, outcome.name,
        )  # fmt: skip
        return False

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


def event_message(row: OutboxRow) -> aio_pika.Message:
    return aio_pika.Message(
        row.body,
        message_id=row.event_id,
        correlation_id=str(row.command_id),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={
            HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION),
            HEADER_COMMAND_ID: str(row.command_id),
            HEADER_REQUEST_ID: row.request_id or "",
        },
    )
