"""The transport: one consumer per partition queue, pulling in delivery order (a FastStream
subscriber, worker/subscribers.py), cutting batches, handing each to the pipeline
(worker/pipeline.py) and acknowledging it once that returns."""

import asyncio
import contextlib
import logging

from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ChannelInvalidStateError
from faststream.rabbit import RabbitBroker

from shared.contracts.imports import MAX_COMMAND_BYTES
from shared.settings import Settings
from worker.connection import ConsumerConnection
from worker.pipeline import Pipeline
from worker.subscribers import deliveries

log = logging.getLogger(__name__)
IDLE_FLUSH_S = 5.0
STOP_GRACE_S = 10.0  # a stop waits this long for the batch in hand


def prefetch(settings: Settings) -> int:
    """Deliveries one partition consumer may hold unacknowledged: WORKER_PREFETCH, but no more than
    its share of WORKER_INFLIGHT_BYTES if each were as large as a command may be. RabbitMQ bounds
    prefetch by count only, so this is what bounds the bytes a worker holds."""
    share = settings.worker_inflight_bytes // (MAX_COMMAND_BYTES * settings.command_partitions)
    return max(1, min(settings.worker_prefetch, share))


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    """A delivery of a channel that closed since: it will be redelivered, so it is skipped here."""
    try:
        return bool(message.channel.is_closed)
    except ChannelInvalidStateError:  # aio-pika raises instead of answering once the channel is gone
        return True


class PartitionConsumer:
    """Consumes one partition strictly in order: a batch is committed and acked before the next."""

    def __init__(
        self,
        connection: ConsumerConnection,
        partition: int,
        settings: Settings,
        pipeline: Pipeline,
    ) -> None:
        self.connection = connection
        self.partition = partition
        self.pipeline = pipeline
        self.relay = pipeline.relay
        self._active = False
        self.settings = settings
        self._buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._loop())]

    async def finish(self, grace_s: float = STOP_GRACE_S) -> None:
        """Finish the batch in hand and take no more (close the connection next: see stop_consuming).

        A batch that cannot finish within `grace_s` (the database is away) is abandoned: nothing of
        it is acknowledged, so its deliveries go back to the queue, in order, when the connection closes.
        """
        self._stopping = True
        self._buffer.put_nowait(None)
        self._arrived.set()
        if self._tasks:
            try:
                async with asyncio.timeout(grace_s):
                    await asyncio.shield(self._tasks[1])
            except TimeoutError:
                log.warning("partition %d: batch in hand abandoned at stop; it will be redelivered", self.partition)
                self._tasks[1].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._tasks[1]

    async def stop_consuming(self) -> None:
        """After the connection closed (prefetched deliveries went back in order), end the pump."""
        if self._tasks:
            pump = self._tasks[0]
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await asyncio.shield(pump)
            pump.cancel()

    async def _pump(self) -> None:
        """Move the partition's deliveries into the buffer, from a FastStream subscriber on a channel
        of its own; once they end or the connection drops (a broker restart, a closed channel),
        discard the broker and subscribe again with capped backoff."""
        delay = 0.5
        while not self._stopping:
            self.relay.unflushed = True  # whoever consumed before us may have left events unrelayed
            self._active = False  # a standby receives nothing until the active consumer goes away
            broker = None
            try:
                broker = await self.connection.broker()
                delay = 0.5
                reason = await self._receive_until_dropped(broker)
            except Exception as error:
                reason = repr(error)
            if not self._stopping:
                log.warning("partition %d: consuming stopped (%s); again in %.1fs", self.partition, reason, delay)
                await self.connection.discard(broker)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _receive_until_dropped(self, broker: RabbitBroker) -> str:
        """Receive until the deliveries end or the broker's connection drops; say which."""
        receiving = asyncio.create_task(self._receive(broker))
        dropped = asyncio.create_task(self.connection.dropped(broker))
        try:
            await asyncio.wait((receiving, dropped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiving, dropped):
                task.cancel()
            await asyncio.gather(receiving, dropped, return_exceptions=True)
        if not receiving.cancelled() and (error := receiving.exception()) is not None:
            return repr(error)
        return "connection dropped" if not dropped.cancelled() else "deliveries ended"

    async def _receive(self, broker: RabbitBroker) -> None:
        async for message in deliveries(broker, self.partition, prefetch(self.settings)):
            self._active = True
            self._buffer.put_nowait(message)
            self._arrived.set()

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        await self._wait_for_work()
        first = self._buffer.get_nowait()
        if first is None:
            return []
        batch, size = [first], len(first.body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.worker_batch_wait_ms / 1000
        # Up to N commands, or fewer large ones (import chunks): a batch's memory stays bounded.
        while len(batch) < self.settings.worker_batch_size and size < self.settings.worker_batch_bytes:
            if self._buffer.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):  # waiting on an Event loses no message
                        await self._arrived.wait()
                if self._buffer.empty():
                    break
            message = self._buffer.get_nowait()
            if message is None:
                self._stopping = True
                break
            batch.append(message)
            size += len(message.body)
        return batch

    async def _wait_for_work(self) -> None:
        """Until a message arrives; while idle, relay events a failed publish left in the outbox."""
        while self._buffer.empty():
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_FLUSH_S):
                    await self._arrived.wait()
            if self._buffer.empty():
                await self.relay.mark_relayed()  # no command transaction is coming to carry the mark
            if self._buffer.empty() and self.relay.unflushed and self._active:
                with contextlib.suppress(Exception):
                    await self.relay.flush()

    async def _loop(self) -> None:
        try:
            await self._consume_batches()
        finally:
            await self.relay.mark_relayed()

    async def _consume_batches(self) -> None:
        while not self._stopping:
            batch = await self._next_batch()
            delay = 0.1
            while live := [message for message in batch if not _channel_closed(message)]:
                try:
                    await self.pipeline.handle(live)
                    await self._acknowledge(live)  # committed, answered: the events are safe in the outbox
                    break
                except Exception:  # e.g. the broker refused a dead letter: try again, never skip
                    log.exception("partition %d: batch not finished; retrying", self.partition)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    async def _acknowledge(self, batch: list[AbstractIncomingMessage]) -> None:
        """After the commit: one ack for the whole batch."""
        await self._ack_through(batch[-1])

    async def _ack_through(self, last: AbstractIncomingMessage) -> None:
        """One ack for the whole batch: every earlier delivery on this channel is in it."""
        try:
            await last.ack(multiple=True)
        except Exception as error:  # the channel is gone; the batch is redelivered and deduplicated
            log.warning("partition %d: ack failed (%r); redelivery will be deduplicated", self.partition, error)
