"""The worker process: a FastStream application with one consumer per partition assigned to it,
applying commands to the primary.

FastStream runs the process: its signal handling and lifespan hooks start and stop the parts below,
and its broker owns the consumers' connection (worker/connection.py). The transport iterates a
subscriber per partition (worker/subscribers.py); everything the worker sends goes through one
aio-pika publisher (worker/outbound.py; docs/architecture.md says why not FastStream's).
"""

import asyncio
import contextlib
import logging

from faststream import FastStream

from shared.db import create_engine
from shared.publishing import Publisher
from shared.settings import Settings, get_settings
from shared.topology import declare_topology, partitions_of_worker
from worker.connection import ConsumerConnection
from worker.consumer import PartitionConsumer
from worker.heartbeat import Heartbeat
from worker.metrics import start_metrics_server
from worker.outbound import Outbound
from worker.pipeline import Pipeline
from worker.relay import PartitionRelay
from worker.unit_of_work import UnitOfWork

log = logging.getLogger("worker")


class Worker:
    """Wires the engine, the connections and one consumer per partition (plus standbys)."""

    consumer_class = PartitionConsumer  # tests swap in a subclass that crashes on cue

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings = settings or get_settings()
        self.connection = ConsumerConnection(
            settings.broker_urls, f"opengovfood-worker-{settings.worker_index}", on_reopen=self.declare_topology
        )
        self.publisher = Publisher(settings.broker_urls, f"opengovfood-worker-{settings.worker_index}-out")
        self.engine = create_engine(settings.database_url, settings)
        unit_of_work = UnitOfWork(self.engine, settings.worker_transient_retry_limit_s, settings.service_grants)
        outbound = Outbound(self.publisher, settings.gateway_bus_user)
        self.partitions = partitions_of_worker(
            settings.command_partitions, settings.worker_index, settings.worker_count
        )
        self.standby = [p for p in range(settings.command_partitions) if p not in self.partitions]
        self.consumers = {
            p: self.consumer_class(
                self.connection,
                p,
                settings,
                Pipeline(p, settings, unit_of_work, outbound, PartitionRelay(p, self.engine, outbound)),
            )
            for p in range(settings.command_partitions)
        }
        self.heartbeat = Heartbeat(settings.worker_heartbeat_file, self.connection)
        self._standing_by: asyncio.Task[None] | None = None

    def application(self) -> FastStream:
        """The FastStream application: it connects the broker between `prepare` and `start`."""
        return FastStream(
            self.connection.current,
            logger=logging.getLogger("worker.faststream"),
            on_startup=[self.prepare],
            after_startup=[self.start],
            on_shutdown=[self.finish],
            after_shutdown=[self.close],
        )

    async def prepare(self) -> None:
        """Before the broker connects: metrics, the topology, the publisher."""
        start_metrics_server(self.settings.worker_metrics_port)
        await self.declare_topology()
        await self.publisher.connect_when_possible()

    async def start(self) -> None:
        """Consume the partitions assigned to this worker; after a delay, stand by for the others."""
        settings = self.settings
        for partition in self.partitions:
            self.consumers[partition].start()
        self.heartbeat.start()
        log.info("worker %d/%d consuming partitions %s", settings.worker_index, settings.worker_count, self.partitions)
        if self.standby:
            self._standing_by = asyncio.create_task(self._stand_by())

    async def declare_topology(self) -> None:
        await declare_topology(self.settings.broker_urls, self.settings.command_partitions)

    async def _stand_by(self) -> None:
        """Failover: single-active-consumer makes these wait until the owner goes away."""
        await asyncio.sleep(self.settings.worker_standby_delay_s)  # a configured delay, not a synchronisation
        for partition in self.standby:
            self.consumers[partition].start()
        log.info("standing by for partitions %s", self.standby)

    async def finish(self) -> None:
        """Finish the batches in hand, then close the connection: what was prefetched goes back to
        the queues, in order (the broker's own stop that follows finds it closed)."""
        if self._standing_by is not None:
            self._standing_by.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._standing_by
        consumers = list(self.consumers.values())
        # Together: the grace is one STOP_GRACE_S for the worker, not one per partition in hand.
        await asyncio.gather(*(consumer.finish() for consumer in consumers))
        await self.connection.close()

    async def close(self) -> None:
        """After the broker stopped: the pumps, the heartbeat, the publisher, the engine."""
        for consumer in self.consumers.values():
            await consumer.stop_consuming()
        await self.heartbeat.stop()
        await self.publisher.close()
        await self.engine.dispose()
