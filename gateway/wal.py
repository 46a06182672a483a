"""Where the replica and the primary stand in the WAL, learned with as few queries as possible."""

import asyncio
import logging

from sqlalchemy import text

from shared.reading import ReadConnection, ReadDatabase

log = logging.getLogger(__name__)
NOT_A_STANDBY = 2**63  # pg_last_wal_replay_lsn() is null: nothing to wait for
REPLAYED = text("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint")
WRITTEN = text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")


async def _replayed(conn: ReadConnection) -> int | None:
    return await conn.scalar(REPLAYED)  # type: ignore[no-any-return]


async def _written(conn: ReadConnection) -> int:
    return await conn.scalar(WRITTEN)  # type: ignore[no-any-return]


class ReplicaWatermark:
    """How far the replica has replayed; one poller serves every waiting request."""

    def __init__(self, database: ReadDatabase, interval_s: float = 0.002) -> None:
        self.database = database
        self.interval_s = interval_s
        self.replayed = 0
        self._waiters = 0
        self._tick = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    async def reached(self, lsn: int, timeout_s: float, *, readings: int | None = None) -> bool:
        """True once the replica has replayed past lsn; False after timeout_s (or after `readings` polls)."""
        if self.replayed >= lsn:
            return True
        if timeout_s <= 0:
            return False
        self._waiters += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
            async with asyncio.timeout(timeout_s):
                seen = 0
                while self.replayed < lsn and (readings is None or seen < readings):
                    await self._tick.wait()
                    seen += 1
            return self.replayed >= lsn
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    async def read_replayed(self) -> int:
        value = await self.database.run(_replayed)
        return value if value is not None else NOT_A_STANDBY

    async def _poll(self) -> None:
        while self._waiters > 0:
            try:
                self.replayed = max(self.replayed, await self.read_replayed())
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
            value = await self.database.run(_written)
        except Exception as error:
            log.warning("primary WAL position unavailable: %r", error)
            return False
        self.known = max(self.known, value)
        return True
