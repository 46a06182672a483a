"""What an operator asks of the whole system: each standby's lag, queue depths and consumers, dead letters."""

import logging
from collections.abc import Sequence
from typing import Any

from aio_pika.abc import AbstractConnection

from gateway.infrastructure.lag import LagMonitor, StandbyLag
from shared.brokers import Brokers, amqp_connect
from shared.topology import DEAD_LETTER_QUEUE_NAME, existing_partitions, partition_queue_name

log = logging.getLogger(__name__)


class StatusProbe:
    """Reports each standby's lag (from the lag monitor, gateway/infrastructure/lag.py) and the command
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
