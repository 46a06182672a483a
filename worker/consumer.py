"""One consumer per partition queue: pull in delivery order, apply in batches, ack after commit."""

import asyncio
import contextlib
import logging

from faststream.rabbit import Channel, RabbitBroker, RabbitMessage
from faststream.rabbit.subscriber import RabbitSubscriber

from shared.models import CommandStatus
from shared.settings import Settings
from shared.topology import PARTITIONS_EXCHANGE, partition_queue
from worker.apply import Applier
from worker.envelope import Envelope, PoisonMessage, decode
from worker.outbound import Outbound

log = logging.getLogger(__name__)


def _channel_closed(message: RabbitMessage) -> bool:
    channel = getattr(message.raw_message, "channel", None)
    return channel is None or bool(getattr(channel, "is_closed", True))


class PartitionConsumer:
    """Consumes one partition strictly in order: a batch is committed and acked before the next."""

    def __init__(self, broker: RabbitBroker, partition: int, settings: Settings, applier: Applier) -> None:
        self.partition = partition
        self.settings = settings
        self.applier = applier
        self.outbound = Outbound(broker)
        self.subscriber: RabbitSubscriber = broker.subscriber(
            partition_queue(partition, settings.command_delivery_limit),
            exchange=PARTITIONS_EXCHANGE,
            channel=Channel(prefetch_count=settings.worker_prefetch),
        )
        self._buffer: asyncio.Queue[RabbitMessage | None] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._loop())]

    async def stop(self) -> None:
        """Finish the batch in hand; what is still prefetched returns to the queue in order."""
        self._stopping = True
        self._buffer.put_nowait(None)
        pump, loop = self._tasks
        await loop
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _pump(self) -> None:
        """Move deliveries into the buffer; resume after a lost connection."""
        while not self._stopping:
            try:
                async for message in self.subscriber:
                    self._buffer.put_nowait(message)
                    self._arrived.set()
            except Exception as error:  # the channel closed under us: robust reconnect follows
                log.warning("partition %d: consuming stopped (%r); resuming", self.partition, error)
            await asyncio.sleep(0.5)

    async def _next_batch(self) -> list[RabbitMessage]:
        first = await self._buffer.get()
        if first is None:
            return []
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.worker_batch_wait_ms / 1000
        while len(batch) < self.settings.worker_batch_size:
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
        return batch

    async def _loop(self) -> None:
        while not self._stopping:
            batch = await self._next_batch()
            delay = 0.1
            while live := [message for message in batch if not _channel_closed(message)]:
                try:
                    await self._handle(live)
                    break
                except Exception:  # e.g. the broker refused a dead letter: try again, never skip
                    log.exception("partition %d: batch not finished; retrying", self.partition)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    def _decode(self, message: RabbitMessage) -> Envelope:
        raw = message.raw_message
        return decode(
            routing_key=raw.routing_key or "",
            message_id=raw.message_id,
            headers=dict(raw.headers or {}),
            body=raw.body,
            bus_user=raw.user_id,
            reply_to=raw.reply_to,
            gateway_bus_user=self.settings.gateway_bus_user,
        )

    async def _handle(self, batch: list[RabbitMessage]) -> None:
        envelopes: list[tuple[RabbitMessage, Envelope]] = []
        for message in batch:
            try:
                envelopes.append((message, self._decode(message)))
            except PoisonMessage as poison:
                await self.outbound.dead_letter(message.raw_message, poison.reason)
        outcomes = await self.applier.apply([envelope for _, envelope in envelopes])
        for (message, _), outcome in zip(envelopes, outcomes, strict=True):
            if outcome.status == CommandStatus.DEAD_LETTERED:
                await self.outbound.dead_letter(message.raw_message, outcome.detail or "")
        await self.outbound.reply_all(
            [(envelope.reply_to, outcome) for (_, envelope), outcome in zip(envelopes, outcomes, strict=True)]
        )
        await self._ack_through(batch[-1])

    async def _ack_through(self, last: RabbitMessage) -> None:
        """One ack for the whole batch: every earlier delivery on this channel is in it."""
        try:
            await last.raw_message.ack(multiple=True)
        except Exception as error:  # the channel is gone; the batch is redelivered and deduplicated
            log.warning("partition %d: ack failed (%r); redelivery will be deduplicated", self.partition, error)
