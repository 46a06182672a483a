"""The replica watermark follows the server that answers: a promoted or a replaced standby never makes
every token count as replayed (read-your-writes would stop, silently)."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.http.request import parse_token
from gateway.infrastructure.consistency import Reads, ReplicaWatermark
from shared.reading import ReadDatabase, read_database
from shared.settings import get_settings
from tests import settings as test_settings


@pytest.fixture
async def databases(database: str) -> AsyncIterator[tuple[ReadDatabase, ReadDatabase]]:
    replica = read_database(test_settings.REPLICA_URL, get_settings())
    primary = read_database(test_settings.PRIMARY_URL, get_settings())
    yield replica, primary
    await replica.close()
    await primary.close()


async def _written(primary: asyncpg.Connection) -> int:
    """The position of a new write on the primary (a WAL message: no table needed), as a token."""
    return parse_token(await primary.fetchval("SELECT pg_logical_emit_message(false, 'test', 'x')::text"))


async def test_a_promoted_standby_shows_no_token(
    databases: tuple[ReadDatabase, ReadDatabase], primary: asyncpg.Connection
) -> None:
    """Once the replica's address answers from a server that is no standby (promoted: its replay
    position is NULL), tokens go to the primary; before, NULL counted as 2^63 replayed, for ever."""
    replica, primary_database = databases
    reads = Reads(replica, primary_database, same=False, wait_s=0.5)
    assert reads.watermark is not None
    token = await _written(primary)
    assert await reads.watermark.reached(token, 5.0)  # the standby replays it
    reads.watermark.database = primary_database  # now a server that replays nothing answers there
    later = await _written(primary)
    assert not await reads.watermark.reached(later, 0.5)
    assert not await reads.on_replica(later)


async def test_a_replaced_standby_that_is_behind_lowers_the_mark(
    databases: tuple[ReadDatabase, ReadDatabase], primary: asyncpg.Connection
) -> None:
    """A mark left high by an earlier standby is asked again of the one that answers now."""
    replica, _ = databases
    watermark = ReplicaWatermark(replica)
    watermark.replayed = 2**62  # as far as an earlier standby had replayed
    beyond = await _written(primary) + 2**40  # a position no server here has replayed
    assert not await watermark.reached(beyond, 0.5)
    assert watermark.replayed < beyond
    assert await watermark.reached(await _written(primary), 5.0)
