"""What an operator asks of the whole system: replica lag, queue depths and consumers, dead letters."""

import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

from gateway.http.request import parse_token
from gateway.infrastructure import repository
from gateway.infrastructure.standbys import Standbys
from shared.brokers import Brokers
from shared.reading import PostgresDatabase, ReadDatabase
from shared.topology import DEAD_LETTER_QUEUE_NAME, existing_partitions, partition_queue_name

log = logging.getLogger(__name__)


class StatusProbe:
    """Measures replica lag (bytes and seconds) and the command queues; one per gateway process."""

    def __init__(
        self,
        replica: ReadDatabase,
        primary: ReadDatabase,
        rabbit_urls: str | Sequence[str],
        partitions: int,
        max_lag_s: float,
    ) -> None:
        self.replica = replica
        self.primary = primary
        self.has_replica = replica is not primary and isinstance(replica, PostgresDatabase | Standbys)
        self.brokers = Brokers(rabbit_urls)
        self.partitions = partitions
        self.max_lag_s = max_lag_s
        self._connection: AbstractConnection | None = None

    async def replica_lag(self) -> dict[str, Any]:
        """Bytes the replica has not replayed yet, and seconds (zero when received == replayed)."""
        if not self.has_replica:
            return {"bytes": 0, "seconds": 0.0, "paused": False}
        current = await self.primary.run(repository.write_position_text)
        row = await self.replica.run(repository.replica_positions)
        behind = max(0, parse_token(current) - parse_token(row.replayed))
        caught_up = row.received == row.replayed or behind == 0
        seconds = 0.0 if caught_up else float(row.since_replay or 0.0)
        if seconds > self.max_lag_s:
            log.warning("replica lag %.1fs, %d bytes behind the primary", seconds, behind)
        return {"bytes": behind, "seconds": round(seconds, 3), "paused": bool(row.paused)}

    async def queues(self) -> list[dict[str, Any]]:
        """Depth and consumers of every partition queue on the broker (also any beyond
        COMMAND_PARTITIONS) and of the dead-letter queue."""
        if self._connection is None or self._connection.is_closed:
            if self._connection is not None:
                self.brokers.lost(self.brokers.current)
            self._connection = await self.brokers.connect(lambda url: aio_pika.connect(url, timeout=5))
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
        """The whole system: `degraded` when the replica lags past the limit or a partition has no worker."""
        problems = []
        try:
            lag: dict[str, Any] | None = await self.replica_lag()
        except Exception as error:
            lag, problems = None, [f"replica: {error!r}"]
        try:
            queues: list[dict[str, Any]] | None = await self.queues()
        except Exception as error:
            queues, problems = None, [*problems, f"broker: {error!r}"]
        if lag is not None and lag["seconds"] > self.max_lag_s:
            problems.append(f"replica lags {lag['seconds']}s (limit {self.max_lag_s}s)")
        commands = [q for q in queues or [] if q["name"] != DEAD_LETTER_QUEUE_NAME]
        if queues is not None and len(commands) != self.partitions:
            problems.append(f"the broker has {len(commands)} partition queues, COMMAND_PARTITIONS is {self.partitions}")
        problems += [f"no worker consumes {q['name']}" for q in commands if q["consumers"] == 0]
        dead = [q["messages"] for q in queues or [] if q["name"] == DEAD_LETTER_QUEUE_NAME]
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "replica_lag": lag,
            "command_queues": commands,
            "dead_letters": dead[0] if dead else None,
        }

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
