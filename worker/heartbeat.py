"""Liveness: the worker touches a file while its broker connection is up."""

import asyncio
import contextlib
from pathlib import Path

from worker.connection import ConsumerConnection

INTERVAL_S = 5.0


class Heartbeat:
    def __init__(self, path: str, connection: ConsumerConnection) -> None:
        self.path = Path(path)
        self.connection = connection
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.path.unlink(missing_ok=True)

    async def _beat(self) -> None:
        while True:
            if self.connection.is_open:
                with contextlib.suppress(OSError):
                    self.path.touch()
            await asyncio.sleep(INTERVAL_S)
