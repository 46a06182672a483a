"""What the worker sends: outcomes to the reply queue that asked, and dead letters with a reason."""

import asyncio
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from faststream.rabbit import RabbitBroker

from shared.contracts.outcomes import Outcome
from shared.topology import DEAD_LETTER_EXCHANGE

log = logging.getLogger(__name__)

HEADER_DEATH_REASON = "x-death-reason"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"


class Outbound:
    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker

    async def reply_all(self, replies: list[tuple[str | None, Outcome]]) -> None:
        """Best effort: a gateway that went away just stops waiting; the inbox keeps the outcome."""
        sends = [self._reply(reply_to, outcome) for reply_to, outcome in replies if reply_to]
        for failure in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(failure, Exception):
                log.warning("reply not sent: %r", failure)

    async def _reply(self, reply_to: str, outcome: Outcome) -> None:
        await self.broker.publish(
            outcome.model_dump(mode="json"),
            routing_key=reply_to,
            correlation_id=str(outcome.command_id),
            mandatory=False,
        )

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Publish a copy to the dead-letter exchange with the reason; the original is acked after."""
        log.warning("dead-lettering %s (%s): %s", message.message_id, message.routing_key, reason)
        headers: dict[str, Any] = dict(message.headers or {})
        headers[HEADER_DEATH_REASON] = reason[:2000]
        headers[HEADER_ORIGINAL_ROUTING_KEY] = message.routing_key or ""
        await self.broker.publish(
            message.body,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=message.routing_key or "",
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            headers=headers,
            persist=True,
        )
