"""`python -m worker`: run the worker until SIGINT/SIGTERM, then finish in-flight work and stop."""

import asyncio
import logging
import signal
import sys

import uvloop

from shared.logging import configure_logging
from shared.settings import get_settings
from shared.topology import TopologyMismatch
from shared.tracing import configure_tracing
from worker.app import Worker


async def serve(worker: Worker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await worker.run(stop)


def main(worker_class: type[Worker] = Worker) -> None:
    configure_logging("worker", get_settings().log_level)
    configure_tracing("worker")  # off unless OTEL_* name an exporter (docs/observability.md)
    try:
        uvloop.run(serve(worker_class()))  # libuv: about a fifth less CPU per command than asyncio's loop
    except TopologyMismatch as mismatch:
        logging.getLogger("worker").error("not starting: %s", mismatch)
        sys.exit(2)


if __name__ == "__main__":
    main()
