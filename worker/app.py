"""The worker process: one consumer per partition assigned to it, applying commands to the primary.

Plain asyncio on aio-pika: the consumers own their channels (worker/connection.py says why), and
everything the worker sends goes through one publisher (worker/outbound.py).
"""

import asyncio
import logging

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

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish the batches in hand and close."""
        settings = self.settings
        start_metrics_server(settings.worker_metrics_port)
        await self.declare_topology()
        await self.publisher.connect_when_possible()
        for partition in self.partitions:
            self.consumers[partition].start()
        self.heartbeat.start()
        log.info("worker %d/%d consuming partitions %s", settings.worker_index, settings.worker_count, self.partitions)
        if self.standby:  # failover: single-active-consumer makes these wait until the owner goes away
            try:
                await asyncio.wait_for(stop.wait(), settings.worker_standby_delay_s)
            except TimeoutError:
                for partition in self.standby:
                    self.consumers[partition].start()
                log.info("standing by for partitions %s", self.standby)
        await stop.wait()
        await self.shutdown()

    async def declare_topology(self) -> None:
        await declare_topology(self.settings.broker_urls, self.settings.command_partitions)

    async def shutdown(self) -> None:
        consumers = list(self.consumers.values())
        # Together: the grace is one STOP_GRACE_S for the worker, not one per partition in hand.
        await asyncio.gather(*(consumer.finish() for consumer in consumers))
        await self.connection.close()  # what was prefetched goes back to the queues, in order
        for consumer in consumers:
            await consumer.stop_consuming()
        await self.heartbeat.stop()
        await self.publisher.close()
        await self.engine.dispose()
