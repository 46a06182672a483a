"""Read-your-writes: consistency tokens are WAL positions; reads wait for the replica or use the primary.

A request waits for the replica at most once, for at most CONSISTENCY_WAIT: its first wait starts the
clock and every later read of the same request uses what is left (then the primary, at once).
"""

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.problems import Problem
from gateway.wal import TOKEN_HEADER, TOKEN_PATTERN, PrimaryPosition, ReplicaWatermark, parse_token
from shared.reading import PostgresDatabase, Read, ReadDatabase

__all__ = ["TOKEN_HEADER", "TOKEN_PATTERN", "Reads", "begin_reads", "parse_token"]

# Concurrent fallback reads on the primary, out of its pool (DB_POOL_SIZE + DB_MAX_OVERFLOW): the
# rest stays free for the reads that must be there, whoever floods the fallbacks.
FALLBACK_SLOTS = 4
SLOT_WAIT_FLOOR_S = 0.1
T = TypeVar("T")


@dataclass
class RequestReads:
    """One request's reads: which databases answered, and when its one wait for the replica ends."""

    served_by: list[str] = field(default_factory=list)
    wait_ends: float | None = None


_request: ContextVar[RequestReads | None] = ContextVar("request_reads", default=None)


def begin_reads() -> RequestReads:
    """A new request: its reads are noted here (gateway/edge.py shows which database answered)."""
    request = RequestReads()
    _request.set(request)
    return request


class Reads:
    """Where reads go: the replica, or the primary (read-only) when the replica is behind a token.

    A read is a function of a ReadConnection (shared/reading.py): a connection found dead is
    replaced and the read run again, once.
    """

    def __init__(self, replica: ReadDatabase, primary: ReadDatabase, *, same: bool, wait_s: float) -> None:
        self.replica = replica
        self.primary = primary
        standby = not same and isinstance(replica, PostgresDatabase)
        self.watermark = ReplicaWatermark(replica) if standby else None
        self.primary_position = PrimaryPosition(primary) if standby else None
        self.wait_s = wait_s
        self._fallbacks = asyncio.Semaphore(FALLBACK_SLOTS)

    async def on_replica(self, token: int | None) -> bool:
        """Whether the replica shows everything up to token, within this request's one bounded wait.

        A token the primary has not written either (not one this API gave out, or from before a
        failover) goes to the primary at once: no replica would ever replay it.
        """
        watermark, primary = self.watermark, self.primary_position
        if token is None or watermark is None or primary is None or watermark.shows(token):
            return True
        if await watermark.reached(token, self._wait_left(), readings=1):
            return True
        if not watermark.standby or not await primary.reached(token):
            return False  # the server answering for the replica replays nothing (promoted): never there
        return await watermark.reached(token, self._wait_left())

    def _wait_left(self) -> float:
        """Seconds this request may still wait for the replica (its first call starts the clock)."""
        request = _request.get()
        if request is None:
            return self.wait_s
        now = asyncio.get_running_loop().time()
        if request.wait_ends is None:
            request.wait_ends = now + self.wait_s
        return request.wait_ends - now

    async def run(self, token: int | None, read: Read[T]) -> T:
        """A read that sees at least everything up to token."""
        if await self.on_replica(token):
            _note("replica")
            return await self.replica.run(read)
        return await self._on_primary(read)

    async def find(self, token: int | None, read: Read[T | None]) -> T | None:
        """A lookup whose miss is checked again on the primary: a miss on the replica may be lag."""
        if await self.on_replica(token):
            _note("replica")
            found = await self.replica.run(read)
            if found is not None or self.watermark is None:
                return found
        return await self._on_primary(read)

    async def latest(self, read: Read[T]) -> T:
        """A read on the primary itself: the strongest answer (what an Idempotency-Key already did)."""
        return await self.primary.run(read)

    async def _on_primary(self, read: Read[T]) -> T:
        """A fallback read on the primary, in one of its few slots (503 when none frees up in time)."""
        try:
            async with asyncio.timeout(max(self._wait_left(), SLOT_WAIT_FLOOR_S)):
                await self._fallbacks.acquire()
        except TimeoutError:
            raise Problem(503, "too many reads wait for the primary just now", headers={"Retry-After": "1"}) from None
        try:
            _note("primary")
            return await self.primary.run(read)
        finally:
            self._fallbacks.release()


def _note(database: str) -> None:
    request = _request.get()
    if request is not None:
        request.served_by.append(database)
