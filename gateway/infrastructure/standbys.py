"""Several standbys (READ_DATABASE_URL naming more than one): reads spread over those that answer.

asyncpg's multi-host DSN only fails over to the first host that accepts, so each standby keeps a pool
of its own (shared/reading.py) and its own watermark: a consistency token is judged against the
standby that will answer the read, never against another one's replay position. A standby that
fails a read is left out for DOWN_S, then tried again; one that lags past MAX_REPLICA_LAG_S
(gateway/infrastructure/status.py) is left out while another is within it. Those left out come last:
while every standby is out, all are tried, in turn.
"""

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from shared.reading import DatabaseUnavailable, PostgresDatabase, Read, ReadDatabase

log = logging.getLogger(__name__)
T = TypeVar("T")
DOWN_S = 1.0  # how long a standby that failed a read is left out


class Standby:
    """One standby: its pool, and until when it is left out (down, or lagging past the bound)."""

    def __init__(self, database: ReadDatabase, name: str) -> None:
        self.database = database
        self.name = name
        self.down_until = -math.inf
        self.lagging_until = -math.inf  # set by the lag monitor (gateway/infrastructure/status.py)

    def left_out(self, now: float) -> tuple[bool, bool]:
        """Why reads would pass it by now: (down, lagging); in_turn puts the least left out first."""
        return self.down_until > now, self.lagging_until > now

    async def run(self, read: Read[T]) -> T:
        """The read on this standby; a failure to reach it leaves it out for DOWN_S."""
        try:
            return await self.database.run(read)
        except DatabaseUnavailable:
            if self.down_until < asyncio.get_running_loop().time():
                log.warning("standby %s unavailable; reads go to the others for %.1fs", self.name, DOWN_S)
            self.down_until = asyncio.get_running_loop().time() + DOWN_S
            raise


class Standbys:
    """The standbys in turn (round robin), those that answer first; a ReadDatabase itself."""

    def __init__(self, databases: Sequence[ReadDatabase]) -> None:
        self.all = [Standby(database, _name(database, number)) for number, database in enumerate(databases, 1)]
        self._turn = 0

    def in_turn(self) -> list[Standby]:
        """Every standby, those not left out first (then the lagging, the down last), starting with the next in turn."""
        if len(self.all) == 1:  # the usual case, on every read: nothing to turn or order
            return self.all
        self._turn = (self._turn + 1) % len(self.all)
        turn = self.all[self._turn :] + self.all[: self._turn]
        now = asyncio.get_running_loop().time()
        return sorted(turn, key=lambda standby: standby.left_out(now))  # stable: keeps the turn

    def serving(self) -> list[Standby]:
        """The standbys that reads without a token go to now (in turn): those least left out."""
        now = asyncio.get_running_loop().time()
        least = min(standby.left_out(now) for standby in self.all)
        return [standby for standby in self.all if standby.left_out(now) == least]

    async def run(self, read: Read[T]) -> T:
        """The read on the next standby that answers; DatabaseUnavailable when none does."""
        failed: DatabaseUnavailable | None = None
        for standby in self.in_turn():
            try:
                return await standby.run(read)
            except DatabaseUnavailable as error:
                failed = error
        assert failed is not None
        raise failed

    async def close(self) -> None:
        for standby in self.all:
            await standby.database.close()


def _name(database: ReadDatabase, number: int) -> str:
    """host:port of a standby (never its password), or its number in READ_DATABASE_URL."""
    if isinstance(database, PostgresDatabase):
        return urlsplit(database.dsn).netloc.rpartition("@")[2] or f"#{number}"
    return f"#{number}"
