"""Two standbys (READ_DATABASE_URL naming both): reads spread over them, a token is judged against the
standby that answers, and a standby that is down is skipped."""

import os
import subprocess
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from gateway.http.request import parse_token
from gateway.infrastructure.consistency import Reads
from shared.reading import ReadConnection, ReadDatabase, read_database
from shared.settings import get_settings
from tests import settings as test_settings
from tests.support.polling import eventually

pytestmark = pytest.mark.postgres
PORT = text("SELECT inet_server_port()")
PG_VERSION = sorted(os.listdir("/etc/postgresql"))[-1]


async def _port(conn: ReadConnection) -> int:
    return int(await conn.scalar(PORT))


def replica2(action: str) -> None:
    """Stop or start the second standby of scripts/cluster.sh."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "replica2", action, "-m", "immediate"]
    subprocess.run(command[:-2] if action == "start" else command, check=True, capture_output=True, timeout=120)


@pytest.fixture
async def reads(database: str) -> AsyncIterator[Reads]:
    settings = get_settings()
    standbys: list[ReadDatabase] = [
        read_database(url, settings) for url in (test_settings.REPLICA_URL, test_settings.REPLICA2_URL)
    ]
    primary = read_database(test_settings.PRIMARY_URL, settings)
    yield Reads(standbys, primary, same=False, wait_s=0.5)
    await primary.close()
    for standby in standbys:
        await standby.close()


async def _written(primary: asyncpg.Connection) -> int:
    """A token after a new write, as the worker reads one after its commit."""
    await primary.execute("SELECT pg_logical_emit_message(true, 'test', 'x')")
    return parse_token(await primary.fetchval("SELECT pg_current_wal_lsn()::text"))


async def test_reads_spread_and_a_token_goes_to_a_standby_that_replayed_it(
    reads: Reads, primary: asyncpg.Connection
) -> None:
    served = Counter([await reads.run(None, _port) for _ in range(20)])
    assert served == {test_settings.REPLICA_PORT: 10, test_settings.REPLICA2_PORT: 10}
    paused = await asyncpg.connect(
        test_settings.REPLICA_DSN.replace(f":{test_settings.REPLICA_PORT}/", f":{test_settings.REPLICA2_PORT}/")
    )
    try:
        await paused.execute("SELECT pg_wal_replay_pause()")
        token = await _written(primary)  # the second standby will not replay it while paused
        answered = Counter([await reads.run(token, _port) for _ in range(20)])
        assert answered == {test_settings.REPLICA_PORT: 20}  # never the paused one, never the primary
    finally:
        await paused.execute("SELECT pg_wal_replay_resume()")
        await paused.close()


async def test_a_standby_that_is_down_is_skipped(reads: Reads, primary: asyncpg.Connection) -> None:
    replica2("stop")
    try:
        token = await _written(primary)
        for current in (None, token):
            answered = Counter([await reads.run(current, _port) for _ in range(10)])
            assert answered == {test_settings.REPLICA_PORT: 10}
    finally:
        replica2("start")
    back = await eventually(lambda: reads.replica.run(_port), lambda port: port == test_settings.REPLICA2_PORT, 30)
    assert back == test_settings.REPLICA2_PORT
