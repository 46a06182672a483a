"""Two standbys (READ_DATABASE_URL naming both): reads spread over them, a token is judged against the
standby that answers, a standby that is down is skipped, and one that lags past the bound serves no
read without a token while the other is within it."""

import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy import Integer, text

from gateway.http.request import parse_token
from gateway.infrastructure.consistency import Reads
from gateway.infrastructure.status import LagMonitor, StatusProbe
from shared.reading import ReadConnection, ReadDatabase, read_database
from shared.settings import get_settings
from tests import settings as test_settings
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker

pytestmark = pytest.mark.postgres
PORT = text("SELECT inet_server_port()")
FOUND = text('SELECT inet_server_port() AS port, count(*) AS found FROM "user" WHERE email = :email').columns(
    port=Integer, found=Integer
)
PG_VERSION = sorted(os.listdir("/etc/postgresql"))[-1]
LAG_BOUND_S = float(test_settings.ENV["MAX_REPLICA_LAG_S"])
REPLICA2_DSN = test_settings.REPLICA_DSN.replace(f":{test_settings.REPLICA_PORT}/", f":{test_settings.REPLICA2_PORT}/")
FIRST, SECOND = (f"127.0.0.1:{port}" for port in (test_settings.REPLICA_PORT, test_settings.REPLICA2_PORT))


async def _port(conn: ReadConnection) -> int:
    return int(await conn.scalar(PORT))


def replica2(action: str) -> None:
    """Stop or start the second standby of scripts/cluster.sh."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "replica2", action, "-m", "immediate"]
    subprocess.run(command[:-2] if action == "start" else command, check=True, capture_output=True, timeout=120)


class _Reads(Reads):
    """Reads over these standbys as the gateway's lifespan sets them up, with the lag monitor (bound LAG_BOUND_S)."""

    def __init__(self, *urls: str) -> None:
        settings = get_settings()
        standbys: list[ReadDatabase] = [read_database(url, settings) for url in urls]
        primary = read_database(test_settings.PRIMARY_URL, settings)
        super().__init__(standbys, primary, same=False, wait_s=0.5)
        self.lags = LagMonitor(self.replica, primary, LAG_BOUND_S)
        self.lags.start()

    async def close(self) -> None:
        await self.lags.stop()
        await super().close()


@pytest.fixture
async def reads(database: str) -> AsyncIterator[Reads]:
    both = _Reads(test_settings.REPLICA_URL, test_settings.REPLICA2_URL)
    yield both
    await both.close()


async def _written(primary: asyncpg.Connection) -> int:
    """A token after a new write, as the worker reads one after its commit."""
    await primary.execute("SELECT pg_logical_emit_message(true, 'test', 'x')")
    return parse_token(await primary.fetchval("SELECT pg_current_wal_lsn()::text"))


async def test_reads_spread_and_a_token_goes_to_a_standby_that_replayed_it(
    reads: Reads, primary: asyncpg.Connection
) -> None:
    served = Counter([await reads.run(None, _port) for _ in range(20)])
    assert served == {test_settings.REPLICA_PORT: 10, test_settings.REPLICA2_PORT: 10}
    paused = await asyncpg.connect(REPLICA2_DSN)
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


async def test_a_standby_lagging_past_the_bound_serves_no_read_without_a_token(
    reads: Reads, primary: asyncpg.Connection, stack: tuple[Worker, Gateway]
) -> None:
    """Replay paused on the second standby, then a write: once the second standby lags past the bound,
    reads without a token never see it stale; /health/status shows each standby; on resume it serves
    again. Two pools both on the paused standby stand for "every standby lags": they still answer."""
    email = f"lag-{uuid.uuid4().hex}@example.com"
    lagging_only = _Reads(test_settings.REPLICA2_URL, test_settings.REPLICA2_URL)
    paused = await asyncpg.connect(REPLICA2_DSN)
    try:
        await paused.execute("SELECT pg_wal_replay_pause()")
        await primary.execute(
            'INSERT INTO "user" (email, hashed_password, full_name) VALUES ($1, $2, $3)', email, "x", "lag probe"
        )
        written = time.monotonic()

        async def tokenless_reads() -> Counter[tuple[int, int]]:
            return Counter([await reads.run(None, lambda conn: _found(conn, email)) for _ in range(20)])

        await eventually(tokenless_reads, lambda answers: set(answers) == {(test_settings.REPLICA_PORT, 1)}, 10)
        left_out_after = time.monotonic() - written
        assert await tokenless_reads() == {(test_settings.REPLICA_PORT, 1): 20}  # never stale again
        await eventually(lagging_only.lags.fresh, lambda found: all(one.lags_past(LAG_BOUND_S) for one in found), 10)
        still = Counter([await lagging_only.run(None, lambda conn: _found(conn, email)) for _ in range(4)])
        assert still == {(test_settings.REPLICA2_PORT, 0): 4}  # every standby lags: reads still go to them
        async with httpx.AsyncClient(base_url=stack[1].url, timeout=10) as http:
            status = await eventually(lambda: _status(http), lambda s: _serving(s) == {FIRST: True, SECOND: False})
        probe = StatusProbe(lagging_only.lags, test_settings.RABBIT_URLS, 1)
        try:
            all_lag = await eventually(probe.report, lambda r: all(one["problem"] for one in r["standbys"]), 10)
        finally:
            await probe.close()
    finally:
        await paused.execute("SELECT pg_wal_replay_resume()")
        await paused.close()
        await lagging_only.close()
    print(f"\nthe paused standby was left out of reads without a token {left_out_after:.2f}s after the write")
    assert left_out_after < LAG_BOUND_S + 3.0
    second = next(standby for standby in status["standbys"] if standby["name"] == SECOND)
    assert (second["up"], second["paused"], second["seconds"] > LAG_BOUND_S, second["bytes"] > 0) == (
        True, True, True, True
    )  # fmt: skip
    assert status["status"] == "degraded"
    assert f"standby {SECOND} lags" in " ".join(status["problems"])
    assert [one["serving"] for one in all_lag["standbys"]] == [True, True]
    assert (
        f"no standby is up and within the limit: reads without a token go to {SECOND}, {SECOND}" in all_lag["problems"]
    )
    back = await eventually(lambda: reads.run(None, _port), lambda port: port == test_settings.REPLICA2_PORT, 10)
    assert back == test_settings.REPLICA2_PORT
    async with httpx.AsyncClient(base_url=stack[1].url, timeout=10) as http:
        await eventually(lambda: _status(http), lambda s: _serving(s) == {FIRST: True, SECOND: True})


async def _found(conn: ReadConnection, email: str) -> tuple[int, int]:
    """Which standby answered, and whether it has the user."""
    row = await conn.first(FOUND, {"email": email})
    return row.port, row.found


async def _status(http: httpx.AsyncClient) -> dict:  # type: ignore[type-arg]
    return dict((await http.get("/health/status")).json())


def _serving(status: dict) -> dict[str, bool]:  # type: ignore[type-arg]
    return {standby["name"]: standby["serving"] for standby in status["standbys"]}
