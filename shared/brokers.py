"""Several brokers (a cluster's nodes): one connection at a time, to the next address when it dies.

aio-pika knows one address per connection (its URL parser refuses `h1:5672,h2:5673`, aio-pika
issue #141) and a robust connection only ever reconnects to that one, so the list is ours: RABBIT_URL
first, then RABBIT_FAILOVER_HOSTS with the same user, vhost and TLS. Any transport wraps its own
connect with `Brokers.connect`; after a loss it starts from the address after the one that died.
A short connection (the topology's, an operator's command) takes the first that answers: `connect_first`.
Every AMQP connection of ours opens with `amqp_connect`, which closes a connection that failed or died.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractConnection, TimeoutType

C = TypeVar("C")


class NoBroker(ConnectionError):
    """No broker of the list accepted a connection."""


def broker_urls(rabbit_url: str, failover_hosts: str) -> list[str]:
    """RABBIT_URL, then the same URL with each `host:port` of the comma-separated failover list."""
    parts = urlsplit(rabbit_url)
    credentials = parts.netloc.rpartition("@")[0]
    hosts = [host.strip() for host in failover_hosts.split(",") if host.strip()]
    return [rabbit_url] + [
        urlunsplit(parts._replace(netloc=f"{credentials}@{host}" if credentials else host)) for host in hosts
    ]


def address(url: str) -> str:
    """host:port of a broker URL, for logs (never its password)."""
    return urlsplit(url).netloc.rpartition("@")[2]


class Brokers:
    """The broker addresses of one connection, and which of them to try first."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("no broker address")
        self._first = 0

    @property
    def current(self) -> str:
        """The address the last connection went to (or will be tried first)."""
        return self.urls[self._first]

    async def connect(self, open_connection: Callable[[str], Awaitable[C]]) -> C:
        """What `open_connection` returns for the first address that accepts, trying each once, in
        turn from the current one; NoBroker (with every address's error) when none does."""
        errors = []
        for step in range(len(self.urls)):
            index = (self._first + step) % len(self.urls)
            try:
                connection = await open_connection(self.urls[index])
            except Exception as error:
                errors.append(f"{address(self.urls[index])}: {error!r}")
                continue
            self._first = index
            return connection
        raise NoBroker("no broker accepted a connection: " + "; ".join(errors))

    def lost(self, url: str) -> None:
        """The connection to `url` died: the next connect starts with the address after it."""
        if self.urls[self._first] == url:
            self._first = (self._first + 1) % len(self.urls)


class _ClosedWhenDead(aio_pika.Connection):
    """aio-pika leaves a Connection open in its own books when its connect fails or the broker drops
    it: when the collector takes it later, its __del__ makes a close() coroutine that, with no loop
    running just then, is never awaited (a RuntimeWarning in whatever runs then; a failover meets
    dead nodes often). Such a connection is closed here at once."""

    async def connect(self, timeout: TimeoutType = None) -> None:  # noqa: ASYNC109 (aio-pika's signature)
        try:
            await super().connect(timeout)
        except BaseException:
            await self.close()
            raise

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        try:
            await super()._on_connection_close(closing)  # the close callbacks (a failover's, say) first
        finally:
            # close() waits for this callback to end, so it runs after it; a no-op when we closed it
            self._closing = asyncio.get_running_loop().create_task(self.close())


async def amqp_connect(url: str, **options: Any) -> AbstractConnection:
    """aio_pika.connect, leaving nothing open when it fails."""
    connection: AbstractConnection = await aio_pika.connect(url, connection_class=_ClosedWhenDead, **options)  # noqa: TID251
    return connection


async def connect_first(urls: str | Sequence[str]) -> AbstractConnection:
    """A short connection to the first broker of the list that answers (NoBroker when none does). It
    does not move on when its node dies: what runs on it fails, and is run again."""
    return await Brokers(urls).connect(amqp_connect)
