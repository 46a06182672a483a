"""Read-your-writes: consistency tokens are WAL positions; reads wait for the replica or use the primary.

A request waits for the replica at most once, for at most CONSISTENCY_WAIT: its first wait starts the
clock and every later read of the same request uses what is left (then the primary, at once).
"""

import asyncio
from typing import TypeVar

from gateway.problems import Problem
from gateway.request import current_reads, note_served_by
from gateway.wal import PrimaryPosition, ReplicaWatermark
from shared.reading import PostgresDatabase, Read, ReadDatabase

# Concurrent fallback reads on the primary, out of its pool (DB_POOL_SIZE + DB_MAX_OVERFLOW): the
# rest stays free for the reads that must be there, whoever floods the fallbacks.
FALLBACK_SLOTS = 4
SLOT_WAIT_FLOOR_S = 0.1
T = TypeVar("T")


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
        request = current_reads()
        if request is None:
            return self.wait_s
        now = asyncio.get_running_loop().time()
        if request.wait_ends is None:
            request.wait_ends = now + self.wait_s
        return request.wait_ends - now

    async def run(self, token: int | None, read: Read[T]) -> T:
        """A read that sees at least everything up to token."""
        if await self.on_replica(token):
            note_served_by("replica")
            return await self.replica.run(read)
        return await self._on_primary(read)

    async def find(self, token: int | None, read: Read[T | None]) -> T | None:
        """A lookup whose miss is checked again on the primary: a miss on the replica may be lag."""
        if await self.on_replica(token):
            note_served_by("replica")
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
            note_served_by("primary")
            return await self.primary.run(read)
        finally:
            self._fallbacks.release()
