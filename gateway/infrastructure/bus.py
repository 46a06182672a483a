"""Publishing the callers' commands (persistent, mandatory, confirmed) and waiting for their outcomes."""

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from shared.contracts.commands import CommandBody, CommandName
from shared.contracts.headers import Actor
from shared.contracts.messages import command_message
from shared.contracts.outcomes import Outcome
from shared.logging import trace_headers
from shared.publishing import NotConfirmed, Publisher
from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    GATEWAY_REPLY_PREFIX,
    declare_queue,
    gateway_reply_queue,
)

log = logging.getLogger(__name__)
STATUS_POLL_S = 0.1  # how often a request whose reply queue died reads its command's status


class BusUnavailable(Exception):
    """The broker did not confirm the command in time: it may or may not arrive (at most once)."""

    def __init__(self, command_id: uuid.UUID) -> None:
        super().__init__(f"command {command_id} not confirmed by the broker")
        self.command_id = command_id


class CommandBus:
    """One per gateway process; outcomes come back on this process's own reply queue."""

    def __init__(self, publisher: Publisher, timeout_s: float) -> None:
        self.publisher = publisher
        self.timeout_s = timeout_s
        self.reply_queue = f"{GATEWAY_REPLY_PREFIX}{uuid.uuid4().hex}"  # its bus user may read these
        self._waiters: defaultdict[uuid.UUID, list[asyncio.Future[Outcome]]] = defaultdict(list)
        self.replies_lost = asyncio.Event()  # set (and replaced) each time the reply queue is declared anew

    async def start(self) -> None:
        """Connect (retrying while the broker is down); every connection consumes our reply queue."""
        self.publisher.on_connect(self._consume_replies)
        await self.publisher.connect_when_possible()

    async def _consume_replies(self, connection: AbstractConnection) -> None:
        """The reply queue lives on the node of our connection: on a new one it is declared afresh, and
        whoever waited on the old one learns that its outcome may have died with it."""
        channel = await connection.channel()
        queue = await declare_queue(channel, gateway_reply_queue(self.reply_queue))
        await queue.consume(self._on_reply, no_ack=True)
        lost, self.replies_lost = self.replies_lost, asyncio.Event()
        lost.set()

    async def outcome(
        self, future: asyncio.Future[Outcome], timeout_s: float, status: Callable[[], Awaitable[Outcome | None]]
    ) -> Outcome | None:
        """The outcome from the reply queue within timeout_s (None: not yet). If that queue died meanwhile
        with its node, an outcome sent to it died too: then the command's recorded status answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        lost = self.replies_lost
        watching: asyncio.Future[Any] = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait([future, watching], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
        while not future.done() and lost.is_set() and loop.time() < deadline:
            if (recorded := await status()) is not None:
                return recorded
            await asyncio.wait({future}, timeout=min(STATUS_POLL_S, deadline - loop.time()))
        return future.result() if future.done() else None

    async def send(
        self,
        name: CommandName,
        body: CommandBody,
        *,
        command_id: uuid.UUID,
        actor: Actor,
        owner_key: str,
        headers: dict[str, str] | None = None,
        reply: bool = False,
    ) -> None:
        """Return once the broker has confirmed the command; raise BusUnavailable otherwise.

        With `reply`, the worker sends the outcome to this process's reply queue (for Prefer: wait).
        """
        headers = trace_headers(command_id) | (headers or {})  # x-request-id: the HTTP request behind it
        message = command_message(
            body.model_dump_json(exclude_unset=True).encode(),
            command_id=command_id,
            owner_key=owner_key,
            user_id=self.publisher.user_id,
            actor=str(actor),
            reply_to=self.reply_queue if reply else None,
            headers=headers,
        )
        try:
            await self.publisher.publish(
                message, exchange=COMMANDS_EXCHANGE_NAME, routing_key=name.value, timeout_s=self.timeout_s
            )
        except NotConfirmed as error:
            log.warning("publishing %s %s failed: %s", name, command_id, error)
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

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        try:
            outcome = Outcome.model_validate_json(message.body)
        except ValidationError:
            log.warning("ignoring a reply that is not an outcome (correlation id %s)", message.correlation_id)
            return
        self.resolve(outcome)

    def resolve(self, outcome: Outcome) -> None:
        """Called for each outcome on the reply queue: wake every request waiting for it."""
        for future in self._waiters.pop(outcome.command_id, []):
            if not future.done():
                future.set_result(outcome)
