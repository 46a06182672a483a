"""How far behind each standby is, in seconds, measured by one poller per gateway process.

A standby lags by how long ago the primary had written WAL that the standby has not replayed yet.
Every POLL_S the poller reads the primary's WAL position, keeping each position it moved to with
the time it was seen, and each standby's replay position: a standby at position R lags by the age
of the oldest kept position past R (zero when it has replayed the newest). So an idle primary makes
no lag (on the standby, `now() - pg_last_xact_replay_timestamp()` grows all the same), and a standby
that stops replaying while the primary writes lags from the first position it missed; the figure
is at most POLL_S short, and counts from the gateway's start.

Past the bound (MAX_REPLICA_LAG_S) a standby is marked as lagging for STALE_S: each poll renews
the mark, and when the polls stop (the primary away) it expires and the standby serves again.
gateway/infrastructure/standbys.py leaves such a standby out of reads without a token while another
is within the bound; /health/status shows every standby's figures.
"""

import asyncio
import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.infrastructure import repository
from gateway.infrastructure.standbys import Standby, Standbys
from shared.reading import ReadDatabase

log = logging.getLogger(__name__)
POLL_S = 0.5
READ_TIMEOUT_S = 2.0  # a standby or primary that takes longer is counted as away for this poll
MAX_SAMPLES = 7200  # an hour of a primary that writes all the time: a standby further behind shows an hour


@dataclass(frozen=True)
class StandbyLag:
    """One standby as the last poll found it (figures None: unknown, the standby or the primary away)."""

    name: str
    up: bool
    replaying: bool = True  # False: it answers but replays nothing (promoted)
    paused: bool | None = None
    bytes: int | None = None  # WAL behind the primary's position at that poll
    seconds: float | None = None

    def lags_past(self, bound_s: float) -> bool:
        return not self.replaying or (self.seconds is not None and self.seconds > bound_s)


class PrimaryHistory:
    """The positions the primary moved to, each with the (loop) time it was first seen there."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)

    def add(self, at: float, position: int) -> None:
        if self._seen and position < self._seen[-1][1]:
            self._seen.clear()  # another primary (a failover): the old positions mean nothing now
        if not self._seen or position > self._seen[-1][1]:
            self._seen.append((at, position))

    def behind_since(self, replayed: int) -> float | None:
        """When the primary was first seen past `replayed`; None if it never was."""
        return next((at for at, position in self._seen if position > replayed), None)

    def forget_up_to(self, replayed: int) -> None:
        """Drop what every standby has replayed (the newest position stays)."""
        while len(self._seen) > 1 and self._seen[0][1] <= replayed:
            self._seen.popleft()


class LagMonitor:
    """Polls the primary and every standby every POLL_S; callers read the figures of the last poll."""

    def __init__(self, standbys: Standbys, primary: ReadDatabase, bound_s: float, poll_s: float = POLL_S) -> None:
        self.standbys = standbys
        self.primary = primary
        self.bound_s = bound_s
        self.poll_s = poll_s
        self.stale_s = max(3 * poll_s, 1.0)
        self.readings: dict[Standby, StandbyLag] = {}
        self.read_at = -math.inf
        self._history = PrimaryHistory()
        self._polling: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in (self._poller, self._polling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def fresh(self) -> list[StandbyLag]:
        """Every standby's figures, at most POLL_S old (polled now if the last poll is older)."""
        if asyncio.get_running_loop().time() - self.read_at > self.poll_s:
            await self.poll()
        return [self.readings[standby] for standby in self.standbys.all if standby in self.readings]

    async def poll(self) -> None:
        """One poll, shared by whoever asks while it runs."""
        if self._polling is None or self._polling.done():
            self._polling = asyncio.create_task(self._poll())
        await asyncio.shield(self._polling)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as error:
                log.warning("standby lag not measured: %r", error)
            await asyncio.sleep(self.poll_s)

    async def _poll(self) -> None:
        written, *found = await asyncio.gather(
            _bounded(self.primary.run(repository.write_position)),
            *(_bounded(standby.run(repository.standby_position)) for standby in self.standbys.all),
        )
        now = asyncio.get_running_loop().time()
        if written is not None:
            self._history.add(now, written)
        for standby, row in zip(self.standbys.all, found, strict=True):
            reading = self._reading(standby.name, row, written, now)
            self.readings[standby] = reading
            if written is not None:  # a judgement needs the primary: without it the mark expires
                standby.lagging_until = now + self.stale_s if reading.lags_past(self.bound_s) else -math.inf
        replayed = [row.replayed for row in found if row is not None and row.replayed is not None]
        if len(replayed) == len(found):  # every standby answered: what all of them replayed is needed no more
            self._history.forget_up_to(min(replayed))
        self.read_at = now

    def _reading(self, name: str, row: Any, written: int | None, now: float) -> StandbyLag:
        if row is None:
            return StandbyLag(name, up=False)
        if row.replayed is None:
            return StandbyLag(name, up=True, replaying=False)
        if written is None:
            return StandbyLag(name, up=True, paused=row.paused)
        since = self._history.behind_since(row.replayed)
        seconds = 0.0 if since is None else round(now - since, 3)
        return StandbyLag(name, up=True, paused=row.paused, bytes=max(0, written - row.replayed), seconds=seconds)


async def _bounded(read: Any) -> Any:
    """The read's result; None when it fails or takes longer than READ_TIMEOUT_S."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await read
    except Exception:
        return None
