"""The AMQP connection the partition consumers share: a plain one, reopened by them when it drops.

Not a robust (self-restoring) connection on purpose: after a broker restart a restored consumer can
be left on a channel that died during restoration, consuming nothing. Owning the channels, the
consumers notice the loss and subscribe again, in order, with backoff. On a cluster they subscribe
again on the next node (shared/brokers.py): a discarded connection moves the list past its node.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractConnection

from shared.brokers import Brokers


class ConsumerConnection:
    """`on_reopen` runs before a connection that replaces a lost one is handed out: the worker
    declares the topology there, since a broker that restarted lost the (transient) routing to the
    partitions, and intake stays closed until it is rebuilt (shared/topology.py says why)."""

    def __init__(
        self, urls: str | Sequence[str], name: str, on_reopen: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.brokers = Brokers(urls)
        self.name = name
        self.on_reopen = on_reopen
        self._connection: AbstractConnection | None = None
        self._opened = False
        self._lock = asyncio.Lock()

    async def get(self) -> AbstractConnection:
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                if self._opened and self.on_reopen is not None:
                    await self.on_reopen()
                self._connection = await self.brokers.connect(self._open)
                self._opened = True
            return self._connection

    async def _open(self, url: str) -> AbstractConnection:
        return await aio_pika.connect(url, client_properties={"connection_name": self.name}, timeout=10)

    @property
    def is_open(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def discard(self, broken: AbstractConnection | None) -> None:
        """Forget a connection that failed (it may not know it is closed yet); the next get() reopens."""
        async with self._lock:
            if broken is not None and broken is self._connection:
                self._connection = None
                self.brokers.lost(self.brokers.current)
                with contextlib.suppress(Exception):
                    await broken.close()

    async def close(self) -> None:
        """Closing returns every unacknowledged delivery to its queue at once, in order."""
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed:
                await self._connection.close()
