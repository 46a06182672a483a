"""Read-your-writes: consistency tokens are WAL positions; reads wait for the replica or use the primary.

A request waits for the replica at most once, for at most CONSISTENCY_WAIT: its first wait starts the
clock and every later read of the same request uses what is left (then the primary, at once). Where
the replica and the primary stand in the WAL is learned with as few queries as possible (one poller
serves every waiting request).
"""

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import TypeVar

from gateway.http.problems import Problem
from gateway.http.request import current_reads, note_served_by
from gateway.infrastructure import repository
from gateway.infrastructure.standbys import Standby, Standbys
from shared.reading import DatabaseUnavailable, PostgresDatabase, Read, ReadDatabase

log = logging.getLogger(__name__)
# Concurrent fallback reads on the primary, out of its pool (DB_POOL_SIZE + DB_MAX_OVERFLOW): the
# rest stays free for the reads that must be there, whoever floods the fallbacks.
FALLBACK_SLOTS = 4
SLOT_WAIT_FLOOR_S = 0.1
T = TypeVar("T")
FRESH_S = 1.0  # how long one reading of the replica counts (a replaced replica is noticed within it)


class ReplicaWatermark:
    """How far the replica that answers has replayed; one poller serves every waiting request.

    The mark follows each reading, down as well as up: the server behind READ_DATABASE_URL may be
    replaced by a standby that is further behind, or promoted (its replay position is NULL then), and
    neither may leave a high mark that counts every token as replayed. A server that replays nothing
    shows no token: those reads go to the primary. A reading counts for `fresh_s`, then is asked again.
    """

    def __init__(self, database: ReadDatabase, interval_s: float = 0.002, fresh_s: float = FRESH_S) -> None:
        self.database = database
        self.interval_s = interval_s
        self.fresh_s = fresh_s
        self.replayed = 0
        self.standby = True  # the last reading came from a server that replays WAL
        self.read_at = -math.inf  # the loop's time of that reading
        self._waiters = 0
        self._tick = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    def shows(self, lsn: int) -> bool:
        """Whether the last reading, still fresh, has the replica past lsn (no query)."""
        return self.replayed >= lsn and asyncio.get_running_loop().time() - self.read_at <= self.fresh_s

    async def reached(self, lsn: int, timeout_s: float, *, readings: int | None = None) -> bool:
        """True once the replica has replayed past lsn; False after timeout_s (or after `readings` polls,
        or as soon as the server answers that it replays nothing)."""
        if self.shows(lsn):
            return True
        if timeout_s <= 0:
            return False
        self._waiters += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
            async with asyncio.timeout(timeout_s):
                seen = 0
                while not self.shows(lsn) and (readings is None or seen < readings):
                    await self._tick.wait()
                    seen += 1
                    if not self.standby:
                        break
            return self.shows(lsn)
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    async def read_replayed(self) -> int | None:
        """The replay position of the server that answers; None when it is not a standby."""
        return await self.database.run(repository.replay_position)

    async def _poll(self) -> None:
        while self._waiters > 0:
            try:
                replayed = await self.read_replayed()
                self.replayed, self.standby = replayed or 0, replayed is not None
                self.read_at = asyncio.get_running_loop().time()
            except Exception as error:  # replica down: waiters time out and use the primary
                log.warning("replica replay position unavailable: %r", error)
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()
            await asyncio.sleep(self.interval_s)


class PrimaryPosition:
    """The primary's WAL position, read again only when asked about a position past the last reading.

    Every token this system hands out is at or before the primary's position when it is handed out,
    so one reading covers all earlier tokens, and requests asking at once share it.
    """

    def __init__(self, database: ReadDatabase) -> None:
        self.database = database
        self.known = 0
        self._reading: asyncio.Task[bool] | None = None

    async def reached(self, lsn: int) -> bool:
        """Whether the primary has written lsn; True when it cannot be asked (the read that follows fails)."""
        if lsn <= self.known:
            return True
        if self._reading is not None and not self._reading.done():
            await asyncio.shield(self._reading)  # it began before this question: its answer may be too old
            if lsn <= self.known:
                return True
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
        answered = await asyncio.shield(self._reading)
        return lsn <= self.known or not answered

    async def _read(self) -> bool:
        try:
            value = await self.database.run(repository.write_position)
        except Exception as error:
            log.warning("primary WAL position unavailable: %r", error)
            return False
        self.known = max(self.known, value)
        return True


class Reads:
    """Where reads go: a standby (gateway/infrastructure/standbys.py; without a token, one within
    MAX_REPLICA_LAG_S if there is one, as the lag monitor of gateway/infrastructure/status.py marks
    them; gateway/app.py starts it), or the primary (read-only) when no standby shows a token in time.

    A read is a function of a ReadConnection (shared/reading.py): a connection found dead is
    replaced and the read run again, once.
    """

    def __init__(
        self,
        replica: ReadDatabase | Sequence[ReadDatabase],
        primary: ReadDatabase,
        *,
        same: bool,
        wait_s: float,
    ) -> None:
        replicas = list(replica) if isinstance(replica, Sequence) else [replica]
        self.replica = Standbys(replicas)  # itself a ReadDatabase: reads without a token, health checks
        self.primary = primary
        standby = not same and all(isinstance(database, PostgresDatabase) for database in replicas)
        self._marks = {one: ReplicaWatermark(one.database) for one in self.replica.all} if standby else {}
        self.watermark = self._marks[self.replica.all[0]] if standby else None  # the first standby's
        self.primary_position = PrimaryPosition(primary) if standby else None
        self.wait_s = wait_s
        self._fallbacks = asyncio.Semaphore(FALLBACK_SLOTS)

    @property
    def on_standbys(self) -> bool:
        """Whether reads go to standbys of a primary (whose lag is worth measuring), not to the primary itself."""
        return self.primary_position is not None

    async def close(self) -> None:
        await self.replica.close()
        if all(self.primary is not standby.database for standby in self.replica.all):
            await self.primary.close()

    async def on_replica(self, token: int | None) -> bool:
        """Whether a standby shows everything up to token, within this request's one bounded wait."""
        return await self._standby_for(token) is not None

    async def _standby_for(self, token: int | None) -> Standby | None:
        """The standby to read on: the next in turn, or one whose mark already shows the token; else
        the first to replay it within the wait; None: the primary.

        A token the primary has not written either (not one this API gave out, or from before a
        failover) goes to the primary at once: no standby would ever replay it.
        """
        candidates = self.replica.in_turn()
        if token is None or not self._marks or self.primary_position is None:
            return candidates[0]
        for standby in candidates:
            if self._marks[standby].shows(token):
                return standby
        for standby in candidates:  # one fresh reading of each
            if await self._marks[standby].reached(token, self._wait_left(), readings=1):
                return standby
        replaying = [standby for standby in candidates if self._marks[standby].standby]
        if not replaying or not await self.primary_position.reached(token):
            return None  # the servers answering for the standbys replay nothing (promoted): never there
        return await self._first_to_reach(replaying, token)

    async def _first_to_reach(self, standbys: list[Standby], token: int) -> Standby | None:
        """The first of these standbys to replay past token within the wait; None if none does."""
        waits = {asyncio.create_task(self._marks[one].reached(token, self._wait_left())): one for one in standbys}
        pending = set(waits)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    if finished.result():
                        return waits[finished]
            return None
        finally:
            for task in pending:
                task.cancel()

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
        standby = await self._standby_for(token)
        if standby is None:
            return await self._on_primary(read)
        return await self._on_standby(standby, token, read)

    async def find(self, token: int | None, read: Read[T | None]) -> T | None:
        """A lookup whose miss is checked again on the primary: a miss on a standby may be lag."""
        standby = await self._standby_for(token)
        if standby is not None:
            found = await self._on_standby(standby, token, read)
            if found is not None or self.watermark is None:
                return found
        return await self._on_primary(read)

    async def _on_standby(self, standby: Standby, token: int | None, read: Read[T]) -> T:
        """The read on `standby`; if it fails, on the other standbys (without a token) or the primary."""
        note_served_by("replica")
        try:
            return await standby.run(read)
        except DatabaseUnavailable:
            if token is None:
                return await self.replica.run(read)  # the others first
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
