"""The worker process: a FastStream app whose partition consumers apply commands to the primary."""

import asyncio
import logging

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from shared.db import create_engine
from shared.settings import Settings, get_settings
from shared.topology import declare_topology, partitions_of_worker
from worker.apply import Applier
from worker.connection import ConsumerConnection
from worker.consumer import PartitionConsumer
from worker.events import Relay
from worker.group_commit import GroupCommit
from worker.heartbeat import Heartbeat
from worker.metrics import broker_middleware, start_metrics_server

log = logging.getLogger("worker")


def create_app(settings: Settings | None = None) -> FastStream:
    """Wire broker, engine and one consumer per partition assigned to this worker."""
    settings = settings or get_settings()
    broker = RabbitBroker(settings.rabbit_url, logger=log, log_level=logging.DEBUG, middlewares=[broker_middleware()])
    connection = ConsumerConnection(settings.rabbit_url, f"opengovfood-worker-{settings.worker_index}")
    # No ping per checkout (a round trip per batch): a dead connection fails as transient and is retried.
    engine = create_engine(settings.database_url, settings, pre_ping=False)
    applier = GroupCommit(Applier(engine, retry_limit_s=settings.worker_transient_retry_limit_s))
    relay = Relay(engine, settings.rabbit_url)
    partitions = partitions_of_worker(settings.command_partitions, settings.worker_index, settings.worker_count)
    standby = [p for p in range(settings.command_partitions) if p not in partitions]
    consumers = [PartitionConsumer(broker, connection, p, settings, applier, relay) for p in partitions]
    standbys = [PartitionConsumer(broker, connection, p, settings, applier, relay) for p in standby]
    heartbeat = Heartbeat(settings.worker_heartbeat_file, broker)
    app = FastStream(broker, logger=log)

    @app.on_startup
    async def declare() -> None:
        start_metrics_server(settings.worker_metrics_port)
        await declare_topology(settings.rabbit_url, settings.command_partitions, settings.command_delivery_limit)

    @app.after_startup
    async def start_consuming() -> None:
        for consumer in consumers:
            consumer.start()
        heartbeat.start()
        log.info("worker %d/%d consuming partitions %s", settings.worker_index, settings.worker_count, partitions)
        if standbys:  # failover: single-active-consumer makes these wait until the owner goes away
            await asyncio.sleep(settings.worker_standby_delay_s)
            for consumer in standbys:
                consumer.start()
            log.info("standing by for partitions %s", standby)

    @app.on_shutdown
    async def finish_in_flight() -> None:
        for consumer in consumers + standbys:
            await consumer.finish()
        await connection.close()  # what was prefetched goes back to the queues, in order
        for consumer in consumers + standbys:
            await consumer.stop_consuming()
        await heartbeat.stop()
        await relay.close()

    @app.after_shutdown
    async def close_database() -> None:
        await engine.dispose()

    return app
