"""What an operator asks of the whole system: each standby's lag, queue depths and consumers, dead letters.

How far behind each standby is, in seconds, measured by one poller per gateway process.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractConnection

from gateway.infrastructure import repository
from gateway.infrastructure.standbys import Standby, Standbys
from shared.brokers import Brokers, amqp_connect
from shared.reading import ReadDatabase
from shared.topology import DEAD_LETTER_QUEUE_NAME, existing_partitions, partition_queue_name

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


class StatusProbe:
    """Reports each standby's lag (from the lag monitor above) and the command
    queues; one per gateway process."""

    def __init__(self, lags: LagMonitor | None, rabbit_urls: str | Sequence[str], partitions: int) -> None:
        self.lags = lags  # None: no standby (reads go to the primary); its bound is MAX_REPLICA_LAG_S
        self.brokers = Brokers(rabbit_urls)
        self.partitions = partitions
        self._connection: AbstractConnection | None = None

    async def standbys(self) -> list[dict[str, Any]]:
        """Each standby: its address, whether it answers and serves reads without a token, its lag."""
        if self.lags is None:
            return []
        serving = {standby.name for standby in self.lags.standbys.serving()}
        bound_s = self.lags.bound_s
        return [_figures(reading, reading.name in serving, bound_s) for reading in await self.lags.fresh()]

    async def replica_lag(self) -> dict[str, Any]:
        """The standby furthest behind among those measured: WAL bytes not replayed, and seconds (0 when
        caught up); LookupError when none could be measured."""
        if self.lags is None:
            return {"bytes": 0, "seconds": 0.0, "paused": False}
        return _furthest_behind(await self.standbys())

    async def queues(self) -> list[dict[str, Any]]:
        """Depth and consumers of every partition queue on the broker (also any beyond
        COMMAND_PARTITIONS) and of the dead-letter queue."""
        if self._connection is None or self._connection.is_closed:
            if self._connection is not None:
                self.brokers.lost(self.brokers.current)
            self._connection = await self.brokers.connect(lambda url: amqp_connect(url, timeout=5))
        existing = await existing_partitions(self._connection)
        channel = await self._connection.channel()
        try:
            partitions = range(max(existing, self.partitions) if existing else 0)
            names = [partition_queue_name(p) for p in partitions] + [DEAD_LETTER_QUEUE_NAME]
            found = []
            for name in names:
                declared = (await channel.declare_queue(name, passive=True)).declaration_result
                found.append({"name": name, "messages": declared.message_count, "consumers": declared.consumer_count})
            return found
        finally:
            await channel.close()

    async def report(self) -> dict[str, Any]:
        """The whole system: `degraded` when a standby is away or lags past the limit, or a partition has no worker."""
        standbys = await self.standbys()
        problems = _standby_problems(standbys)
        try:
            lag: dict[str, Any] | None = _furthest_behind(standbys) if standbys else await self.replica_lag()
        except LookupError:
            lag = None
        try:
            queues: list[dict[str, Any]] | None = await self.queues()
        except Exception as error:
            queues, problems = None, [*problems, f"broker: {error!r}"]
        commands = [q for q in queues or [] if q["name"] != DEAD_LETTER_QUEUE_NAME]
        if queues is not None and len(commands) != self.partitions:
            problems.append(f"the broker has {len(commands)} partition queues, COMMAND_PARTITIONS is {self.partitions}")
        problems += [f"no worker consumes {q['name']}" for q in commands if q["consumers"] == 0]
        dead = [q["messages"] for q in queues or [] if q["name"] == DEAD_LETTER_QUEUE_NAME]
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "replica_lag": lag,
            "standbys": standbys,
            "command_queues": commands,
            "dead_letters": dead[0] if dead else None,
        }

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def _furthest_behind(standbys: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [standby for standby in standbys if standby["seconds"] is not None]
    if not measured:
        raise LookupError("no standby's lag could be measured")
    return {
        "bytes": max(standby["bytes"] for standby in measured),
        "seconds": max(standby["seconds"] for standby in measured),
        "paused": any(standby["paused"] for standby in measured),
    }


def _figures(reading: StandbyLag, serving: bool, bound_s: float) -> dict[str, Any]:
    """A standby as /health/status shows it; `problem` says what is wrong with it, if anything."""
    problem = None
    if not reading.up:
        problem = "unreachable"
    elif not reading.replaying:
        problem = "replays nothing (promoted?)"
    elif reading.seconds is None:
        problem = "lag unknown: the primary did not answer"
    elif reading.lags_past(bound_s):
        problem = f"lags {reading.seconds}s (limit {bound_s}s)"
    return {
        "name": reading.name, "up": reading.up, "serving": serving, "bytes": reading.bytes,
        "seconds": reading.seconds, "paused": reading.paused, "problem": problem,
    }  # fmt: skip


def _standby_problems(standbys: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the standbys, and where reads without a token go while none is right."""
    problems = [f"standby {standby['name']} {standby['problem']}" for standby in standbys if standby["problem"]]
    if standbys and len(problems) == len(standbys):
        serving = ", ".join(standby["name"] for standby in standbys if standby["serving"])
        problems.append(f"no standby is up and within the limit: reads without a token go to {serving}")
    return problems
