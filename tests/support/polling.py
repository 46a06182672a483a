"""Waiting for an effect with a deadline, never a fixed sleep."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], deadline_s: float = 20.0) -> T:
    """Call probe() until accept(result); return the result, or fail with the last one seen."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        result = await probe()
        if accept(result):
            return result
        if loop.time() > end:
            raise AssertionError(f"not reached within {deadline_s}s; last value: {_short(result)}")
        await asyncio.sleep(0.02)


def _short(value: object, limit: int = 300) -> str:
    text = (
        repr(value)
        if not isinstance(value, dict | list | set) or len(value) < 20
        else f"{type(value).__name__} of {len(value)}"
    )
    return text[:limit]
