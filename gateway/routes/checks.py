"""The readiness checks' cache: each check runs at most once a second, whoever asks (/health/ready, /metrics)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

CHECK_TTL_S = 1.0  # a probe every few ms costs the databases one query per check per second at most
CHECK_TIMEOUT_S = 2.0  # a hung database is "unreachable" after this, so readiness says so within seconds


class CachedChecks:
    """Each check runs at most once per CHECK_TTL_S, whoever asks; callers arriving meanwhile share the run."""

    def __init__(self, ttl_s: float = CHECK_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._runs: dict[str, tuple[float, asyncio.Task[Any]]] = {}

    async def result(self, name: str, check: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        run = self._runs.get(name)
        if run is None or (run[1].done() and now - run[0] >= self.ttl_s):
            run = (now, asyncio.create_task(_bounded(check)))
            self._runs[name] = run
        return await asyncio.shield(run[1])


async def _bounded(check: Callable[[], Awaitable[Any]]) -> Any:
    """The check's answer, or None when it fails or takes longer than CHECK_TIMEOUT_S."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check()
    except Exception:
        return None


def get_checks(request: Request) -> CachedChecks:
    """This app's cache of readiness checks (one per process, made on first use)."""
    state = request.app.state
    if getattr(state, "ready_checks", None) is None:
        state.ready_checks = CachedChecks()
    checks: CachedChecks = state.ready_checks
    return checks


ChecksDep = Annotated[CachedChecks, Depends(get_checks)]
