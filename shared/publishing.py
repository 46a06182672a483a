"""Publishing on the bus, the one way every part of the system does it.

A `Publisher` holds one self-restoring AMQP connection and one channel with publisher confirms;
every `publish` returns only once the broker confirmed the message (or raises), and an unroutable
mandatory message raises instead of vanishing. Concurrent publishes share the channel, so their
confirms are pipelined. What goes on the bus is built in shared/contracts/
(`shared/contracts/messages.py` `command_message` for a command).
"""

import asyncio
import contextlib
import logging
from urllib.parse import unquote, urlparse

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from shared import tracing
from shared.retry import backoff

log = logging.getLogger(__name__)
DEFAULT_EXCHANGE = ""  # replies go to a queue by name, through the default exchange


class NotConfirmed(Exception):
    """The broker did not confirm the message in time (or is unreachable): it may or may not arrive."""


def bus_user(rabbit_url: str) -> str:
    """The RabbitMQ user of a URL: sent as the `user_id` property, which the broker validates."""
    return unquote(urlparse(rabbit_url).username or "guest")


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
        for delay in backoff(cap_s=max_delay_s):
            try:
                await self.connect()
                return
            except Exception as error:
                log.warning("broker unavailable (%r); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)

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
