"""Publishing on the bus, the one way every part of the system does it.

A `Publisher` holds one AMQP connection (restored by itself, to another broker of a cluster when its
node dies) and one channel with publisher confirms;
every `publish` returns only once the broker confirmed the message (or raises), and an unroutable
mandatory message raises instead of vanishing. Concurrent publishes share the channel, so their
confirms are pipelined. What goes on the bus is built in shared/contracts/
(`shared/contracts/messages.py` `command_message` for a command).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import unquote, urlparse

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from shared import tracing
from shared.brokers import Brokers, address, amqp_connect
from shared.retry import backoff

log = logging.getLogger(__name__)
DEFAULT_EXCHANGE = ""  # replies go to a queue by name, through the default exchange


class NotConfirmed(Exception):
    """The broker did not confirm the message in time (or is unreachable): it may or may not arrive."""


def bus_user(rabbit_url: str) -> str:
    """The RabbitMQ user of a URL: sent as the `user_id` property, which the broker validates."""
    return unquote(urlparse(rabbit_url).username or "guest")


class Publisher:
    """One connection and one confirming channel of a process, to one broker of its list at a time.

    Not aio-pika's robust connection: that one reconnects only to its own address. When ours dies,
    it reconnects by itself to the next broker of the list (shared/brokers.py) and runs the
    `on_connect` hooks again (a reply consumer subscribes there); meanwhile a publish tries to
    connect within its own timeout, and raises NotConfirmed when no broker answers.
    """

    def __init__(self, rabbit_url: str | Sequence[str], name: str, *, timeout_s: float = 10.0) -> None:
        self.brokers = Brokers(rabbit_url)
        self.name = name
        self.timeout_s = timeout_s
        self.user_id = bus_user(self.brokers.current)
        self.connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connecting = asyncio.Lock()
        self._looking_up = asyncio.Lock()
        self._hooks: list[Callable[[AbstractConnection], Awaitable[None]]] = []
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    def on_connect(self, hook: Callable[[AbstractConnection], Awaitable[None]]) -> None:
        """Run `hook` on every new connection, before any publish uses it."""
        self._hooks.append(hook)

    async def connect(self) -> AbstractConnection:
        """Open the connection and the channel once (again after a loss); later calls return them."""
        async with self._connecting:
            if self.connection is None or not self.is_connected or not self._channel_open():
                await self._forget()
                connection = await self.brokers.connect(self._open)
                try:
                    self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                    for hook in self._hooks:
                        await hook(connection)
                except BaseException:
                    await connection.close()
                    raise
                connection.close_callbacks.add(self._lost)
                self.connection = connection
            return self.connection

    async def _open(self, url: str) -> AbstractConnection:
        return await amqp_connect(url, client_properties={"connection_name": self.name}, timeout=self.timeout_s)

    def _lost(self, connection: object, error: BaseException | None = None) -> None:
        """The connection closed: unless we closed it, reconnect (to the next broker) in the background."""
        if self._closed or connection is not self.connection:
            return
        log.warning("connection to the broker at %s lost (%r); reconnecting", address(self.brokers.current), error)
        self.brokers.lost(self.brokers.current)
        self.connection, self._channel, self._exchanges = None, None, {}
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self.connect_when_possible())

    async def _forget(self) -> None:
        connection, self.connection, self._channel, self._exchanges = self.connection, None, None, {}
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

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
        if name in self._exchanges and self._channel_open():  # no suspension: publishes keep their call order
            return self._exchanges[name]
        async with self._looking_up:  # FIFO: callers waiting for the first lookup resume in order
            # A channel the broker closed (a publish to an exchange deleted since its lookup: 404) takes
            # its exchanges with it; connect() opens anew, with none looked up.
            connection = await self.connect()
            if name in self._exchanges:
                return self._exchanges[name]
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

    def _channel_open(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    @property
    def is_connected(self) -> bool:
        """Connected now (a reconnecting publisher is not)."""
        return self.connection is not None and not self.connection.is_closed

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        await self._forget()
