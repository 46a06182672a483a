"""Publishing on the bus, the one way every part of the system does it.

A `Publisher` holds one self-restoring AMQP connection and one channel with publisher confirms;
every `publish` returns only once the broker confirmed the message (or raises), and an unroutable
mandatory message raises instead of vanishing. Concurrent publishes share the channel, so their
confirms are pipelined. `command_message` builds a command as the public contract describes it
(docs/publishing.md): the gateway, the importer and the CLI build theirs with it.
"""

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlparse

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from shared import tracing
from shared.contracts.commands import SCHEMA_VERSION
from shared.topology import HEADER_ACTOR, HEADER_OWNER, HEADER_SCHEMA_VERSION

log = logging.getLogger(__name__)
DEFAULT_EXCHANGE = ""  # replies go to a queue by name, through the default exchange


class NotConfirmed(Exception):
    """The broker did not confirm the message in time (or is unreachable): it may or may not arrive."""


def bus_user(rabbit_url: str) -> str:
    """The RabbitMQ user of a URL: sent as the `user_id` property, which the broker validates."""
    return unquote(urlparse(rabbit_url).username or "guest")


def command_message(
    body: bytes,
    *,
    command_id: uuid.UUID,
    owner_key: str,
    user_id: str,
    actor: str | None = None,
    reply_to: str | None = None,
    headers: dict[str, Any] | None = None,
) -> aio_pika.Message:
    """A command as the contract says: persistent JSON, its id as message_id, the owner as partition key.

    `actor` (`user:<id>` or `anonymous`) is honoured by the worker only from the gateway's bus user.
    """
    all_headers: dict[str, Any] = {HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION), HEADER_OWNER: owner_key}
    if actor is not None:
        all_headers[HEADER_ACTOR] = actor
    return aio_pika.Message(
        body,
        message_id=str(command_id),
        correlation_id=str(command_id),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=user_id,
        reply_to=reply_to,
        timestamp=datetime.now(UTC),
        headers=all_headers | (headers or {}),
    )


class Publisher:
    """One connection and one confirming channel of a process; reconnects by itself after a loss."""

    def __init__(self, rabbit_url: str, name: str, *, timeout_s: float = 10.0) -> None:
        self.rabbit_url = rabbit_url
        self.name = name
        self.timeout_s = timeout_s
        self.user_id = bus_user(rabbit_url)
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connecting = asyncio.Lock()
        self._looking_up = asyncio.Lock()

    async def connect(self) -> AbstractRobustConnection:
        """Open the connection and the channel once; later calls return them."""
        async with self._connecting:
            if self.connection is None:
                connection = await aio_pika.connect_robust(
                    self.rabbit_url, client_properties={"connection_name": self.name}, timeout=self.timeout_s
                )
                self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self.connection = connection
            return self.connection

    async def connect_when_possible(self, max_delay_s: float = 10.0) -> None:
        """Connect, retrying with capped backoff: a process starts even while the broker is down."""
        delay = 0.5
        while True:
            try:
                await self.connect()
                return
            except Exception as error:
                log.warning("broker unavailable (%r); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay_s)

    async def exchange(self, name: str) -> AbstractExchange:
        """An exchange by name, looked up passively once (publishing needs no configure permission)."""
        if name in self._exchanges:  # no suspension: concurrent publishes keep their call order
            return self._exchanges[name]
        async with self._looking_up:  # FIFO: callers waiting for the first lookup resume in order
            if name in self._exchanges:
                return self._exchanges[name]
            connection = await self.connect()
            assert self._channel is not None
            if name == DEFAULT_EXCHANGE:
                self._exchanges[name] = self._channel.default_exchange
            else:
                async with connection.channel() as probe:  # a missing exchange closes this channel, not ours
                    await probe.get_exchange(name, ensure=True)
                self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
            return self._exchanges[name]

    async def publish(
        self,
        message: aio_pika.Message,
        *,
        exchange: str,
        routing_key: str,
        mandatory: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        """Return once the broker confirmed; raise NotConfirmed otherwise (refused, unroutable, timed out)."""
        try:
            async with asyncio.timeout(timeout_s or self.timeout_s):
                target = await self.exchange(exchange)
                with tracing.publishing(message, exchange, routing_key):
                    await target.publish(message, routing_key=routing_key, mandatory=mandatory)  # nack, return: raise
        except Exception as error:
            raise NotConfirmed(f"{routing_key} to {exchange or 'the default exchange'}: {error!r}") from error

    @property
    def is_connected(self) -> bool:
        """Connected now (a restoring connection is not)."""
        return self.connection is not None and self.connection.connected.is_set()

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
            self.connection, self._channel, self._exchanges = None, None, {}
