"""Publishing commands (persistent, mandatory, confirmed) and waiting for their outcomes."""

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlparse

from faststream.rabbit import RabbitBroker

from shared.contracts.commands import SCHEMA_VERSION, CommandBody, CommandName
from shared.contracts.headers import Actor
from shared.contracts.outcomes import Outcome
from shared.logging import trace_headers
from shared.topology import (
    COMMANDS_EXCHANGE,
    HEADER_ACTOR,
    HEADER_FINGERPRINT,
    HEADER_OWNER,
    HEADER_SCHEMA_VERSION,
)

log = logging.getLogger(__name__)


class BusUnavailable(Exception):
    """The broker did not confirm the command in time: it may or may not arrive (at most once)."""

    def __init__(self, command_id: uuid.UUID) -> None:
        super().__init__(f"command {command_id} not confirmed by the broker")
        self.command_id = command_id


def bus_user(rabbit_url: str) -> str:
    """Our RabbitMQ user name: sent as the validated user-id property of every command."""
    return unquote(urlparse(rabbit_url).username or "guest")


class CommandBus:
    """One per gateway process; outcomes come back on this process's own reply queue."""

    def __init__(self, broker: RabbitBroker, reply_queue: str, rabbit_url: str, timeout_s: float) -> None:
        self.broker = broker
        self.reply_queue = reply_queue
        self.user_id = bus_user(rabbit_url)
        self.timeout_s = timeout_s
        self._waiters: defaultdict[uuid.UUID, list[asyncio.Future[Outcome]]] = defaultdict(list)

    async def send(
        self,
        name: CommandName,
        body: CommandBody,
        *,
        command_id: uuid.UUID,
        actor: Actor,
        owner_key: str,
        fingerprint: str | None = None,
        reply: bool = False,
    ) -> None:
        """Return once the broker has confirmed the command; raise BusUnavailable otherwise.

        With `reply`, the worker sends the outcome to this process's reply queue (for Prefer: wait).
        """
        headers: dict[str, Any] = {
            HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION),
            HEADER_ACTOR: str(actor),
            HEADER_OWNER: owner_key,
            **trace_headers(command_id),  # x-request-id: the HTTP request behind this command
        }
        if fingerprint:
            headers[HEADER_FINGERPRINT] = fingerprint
        try:
            async with asyncio.timeout(self.timeout_s):  # publish(timeout=) is ignored
                await self.broker.publish(
                    body.model_dump(mode="json", exclude_unset=True),
                    exchange=COMMANDS_EXCHANGE,
                    routing_key=name.value,
                    message_id=str(command_id),
                    correlation_id=str(command_id),
                    reply_to=self.reply_queue if reply else None,
                    user_id=self.user_id,
                    headers=headers,
                    persist=True,
                    mandatory=True,
                    timestamp=datetime.now(UTC),
                )
        except Exception as error:
            log.warning("publishing %s %s failed: %r", name, command_id, error)
            raise BusUnavailable(command_id) from error

    def expect(self, command_id: uuid.UUID) -> asyncio.Future[Outcome]:
        """Register interest before publishing, so a fast outcome is not missed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters[command_id].append(future)
        return future

    def forget(self, command_id: uuid.UUID, future: asyncio.Future[Outcome]) -> None:
        waiters = self._waiters.get(command_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[command_id]

    def resolve(self, outcome: Outcome) -> None:
        """Called for each outcome on the reply queue: wake every request waiting for it."""
        for future in self._waiters.pop(outcome.command_id, []):
            if not future.done():
                future.set_result(outcome)
