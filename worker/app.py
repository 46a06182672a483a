"""The worker process: a FastStream app whose partition consumers apply commands to the primary."""

import logging

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from shared.db import create_engine
from shared.settings import Settings, get_settings
from shared.topology import declare_topology, partitions_of_worker
from worker.apply import Applier
from worker.consumer import PartitionConsumer
from worker.heartbeat import Heartbeat

log = logging.getLogger("worker")


def create_app(settings: Settings | None = None) -> FastStream:
    """Wire broker, engine and one consumer per partition assigned to this worker."""
    settings = settings or get_settings()
    broker = RabbitBroker(settings.rabbit_url, logger=log, log_level=logging.DEBUG)
    engine = create_engine(settings.database_url, settings)
    applier = Applier(engine, retry_limit_s=settings.worker_transient_retry_limit_s)
    partitions = partitions_of_worker(settings.command_partitions, settings.worker_index, settings.worker_count)
    consumers = [PartitionConsumer(broker, p, settings, applier) for p in partitions]
    heartbeat = Heartbeat(settings.worker_heartbeat_file, broker)
    app = FastStream(broker, logger=log)

    @app.on_startup
    async def declare() -> None:
        await declare_topology(settings.rabbit_url, settings.command_partitions, settings.command_delivery_limit)

    @app.after_startup
    async def start_consuming() -> None:
        for consumer in consumers:
            consumer.start()
        heartbeat.start()
        log.info("worker %d/%d consuming partitions %s", settings.worker_index, settings.worker_count, partitions)

    @app.on_shutdown
    async def finish_in_flight() -> None:
        for consumer in consumers:
            await consumer.stop()
        await heartbeat.stop()

    @app.after_shutdown
    async def close_database() -> None:
        await engine.dispose()

    return app
