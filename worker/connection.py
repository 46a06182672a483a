"""The consumers' broker: a FastStream `RabbitBroker`, made for one URL in one place and made anew
by the partition consumers when its connection drops.

FastStream connects robustly (aio-pika restores the connection and its channels by itself), but no
consumer relies on that: after a broker restart a restored consumer can be left on a channel that
died during restoration, consuming nothing (FastStream #2758). So subscriptions are not robust
(worker/subscribers.py), and a consumer that lost its deliveries discards the broker, whose queue and
channel caches die with it, and subscribes again on a fresh one, in order, with backoff. On a
cluster the fresh one goes to the next node (shared/brokers.py). A broker that replaces a lost one
first runs `on_reopen`: the worker declares the topology there, since a broker that restarted lost
the (transient) routing to the partitions (shared/topology.py says why).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aio_pika.abc import AbstractRobustConnection
from faststream.rabbit import RabbitBroker
from yarl import URL

from shared.brokers import Brokers

log = logging.getLogger("worker.faststream")
CONNECT_TIMEOUT_S = 10


def open_broker(url: str, name: str) -> RabbitBroker:
    """A broker for one URL, not yet connected. No dependency resolution (`apply_types=False`):
    nothing on the consumers' path asks FastStream for arguments."""
    return RabbitBroker(
        str(URL(url).update_query(name=name)),  # aiormq's connection name, as the management UI shows it
        timeout=CONNECT_TIMEOUT_S,
        apply_types=False,
        logger=log,
        graceful_timeout=None,  # the consumers finish their batches before the broker stops
    )


class ConsumerConnection:
    """The broker the partition consumers share; `broker()` connects it, `discard()` forgets it."""

    def __init__(
        self, urls: str | Sequence[str], name: str, on_reopen: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.brokers = Brokers(urls)
        self.name = name
        self.on_reopen = on_reopen
        self.current = open_broker(self.brokers.current, name)
        self._current_url = self.brokers.current
        self._connection: AbstractRobustConnection | None = None
        self._opened = False
        self._lock = asyncio.Lock()
        self._closed = False
        self._dropped = asyncio.Event()  # set once the current broker's connection drops

    async def broker(self) -> RabbitBroker:
        """The broker, connected (a new one if the last was discarded)."""
        async with self._lock:
            if self._closed:
                raise ConnectionError("the worker is stopping: no new broker connection")
            if self._connection is None or self._connection.is_closed:
                if self._opened and self.on_reopen is not None:
                    await self.on_reopen()
                self._connection = await self.brokers.connect(self._open)
                self._opened = True
                dropped = self._dropped
                self._connection.close_callbacks.add(lambda *_: dropped.set())
            return self.current

    async def _open(self, url: str) -> AbstractRobustConnection:
        """Connect the current broker if it is for `url`, else a new one for it."""
        if url != self._current_url:
            self.current, self._current_url = open_broker(url, self.name), url
        return await self.current.connect()

    async def dropped(self, broker: RabbitBroker) -> None:
        """Until this broker's connection drops (at once if it was discarded). Deliveries do not end
        by themselves then: aio-pika's robust channel fails to close its queues (ChannelInvalidStateError
        in RobustChannel._on_close), so an iterator would wait for ever."""
        if broker is self.current:
            await self._dropped.wait()

    async def get(self) -> AbstractRobustConnection:
        """The broker's AMQP connection, for a channel of one's own."""
        await self.broker()
        assert self._connection is not None
        return self._connection

    @property
    def is_open(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def discard(self, broken: RabbitBroker | None) -> None:
        """Stop a broker whose deliveries ended (it may not know it is broken); the next broker() makes
        a new one."""
        async with self._lock:
            if broken is not None and broken is self.current:
                self.brokers.lost(self._current_url)
                self.current = open_broker(self.brokers.current, self.name)
                self._current_url = self.brokers.current
                self._connection = None
                self._dropped.set()
                self._dropped = asyncio.Event()
                with contextlib.suppress(Exception):
                    await broken.stop()

    async def close(self) -> None:
        """Closing returns every unacknowledged delivery to its queue at once, in order."""
        async with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection = None
                await self.current.stop()
