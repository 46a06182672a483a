"""`python -m tests.support.crashing_worker`: the real worker, except that it dies (exit 17) between
the commit of a batch holding a command whose body contains CRASH_AFTER_COMMIT_MARKER and its ack."""

import logging
import os

from aio_pika.abc import AbstractIncomingMessage

from worker.__main__ import main
from worker.app import Worker
from worker.consumer import PartitionConsumer

MARKER = os.environ.get("CRASH_AFTER_COMMIT_MARKER", "").encode()
EXIT_CODE = 17
log = logging.getLogger(__name__)


class CrashingConsumer(PartitionConsumer):
    async def _acknowledge(self, batch: list[AbstractIncomingMessage]) -> None:
        if MARKER and any(MARKER in message.body for message in batch):
            log.warning("test: crashing after commit, before ack")
            os._exit(EXIT_CODE)
        await super()._acknowledge(batch)


class CrashingWorker(Worker):
    consumer_class = CrashingConsumer


if __name__ == "__main__":
    main(CrashingWorker)
