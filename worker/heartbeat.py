"""Liveness: the worker touches a file while its broker connection is up."""

import asyncio
import contextlib
from pathlib import Path

from faststream.rabbit import RabbitBroker

INTERVAL_S = 5.0


class Heartbeat:
    def __init__(self, path: str, broker: RabbitBroker) -> None:
        self.path = Path(path)
        self.broker = broker
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
            with contextlib.suppress(Exception):
                if await self.broker.ping(timeout=2.0):
                    self.path.touch()
            await asyncio.sleep(INTERVAL_S)
