"""Health that tells the truth: ready is about the gateway's own needs, status about the system."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from tests import settings as test_settings
from tests.support.api import create_item, sign_up
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker
from tests.support.proxy import TcpProxy

LAG_LIMIT_S = 1.0


class CountingProxy(TcpProxy):
    """A TcpProxy that counts the chunks it forwards, both ways: about one per query and one per answer."""

    chunks = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                self.chunks += 1
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


@pytest.fixture(scope="module")
def proxies() -> Iterator[tuple[TcpProxy, CountingProxy]]:
    with TcpProxy(5672) as broker, CountingProxy(test_settings.REPLICA_PORT) as replica:
        yield broker, replica


@pytest.fixture(scope="module")
def watched_gateway(worker: Worker, proxies: tuple[TcpProxy, CountingProxy]) -> Iterator[Gateway]:
    """A gateway that reaches the broker and the replica through proxies the tests can cut."""
    broker, replica = proxies
    env = {
        "RABBIT_URL": test_settings.RABBIT_URL.replace(":5672/", f":{broker.port}/"),
        "READ_DATABASE_URL": test_settings.REPLICA_URL.replace(f":{test_settings.REPLICA_PORT}/", f":{replica.port}/"),
        "MAX_REPLICA_LAG_S": str(LAG_LIMIT_S),
    }
    with Gateway(env=env) as gateway:
        yield gateway


@pytest.fixture
async def watched(watched_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=watched_gateway.url, timeout=30) as client:
        yield client


async def _status(http: httpx.AsyncClient) -> dict:  # type: ignore[type-arg]
    return dict((await http.get("/health/status")).json())


async def test_live_ready_and_status_when_all_is_well(watched: httpx.AsyncClient) -> None:
    assert (await watched.get("/health/live")).status_code == 200
    ready = await watched.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["replica_lag"]["bytes"] >= 0
    status = await eventually(lambda: _status(watched), lambda s: s["status"] == "ok")
    assert {q["name"] for q in status["command_queues"]} == {f"opengovfood.commands.p{p}" for p in range(4)}
    assert all(q["consumers"] >= 1 for q in status["command_queues"])
    assert status["replica_lag"]["seconds"] == 0 or status["replica_lag"]["bytes"] >= 0


async def test_a_stopped_worker_degrades_status_but_not_readiness(watched: httpx.AsyncClient, worker: Worker) -> None:
    worker.stop()
    try:
        status = await eventually(lambda: _status(watched), lambda s: s["status"] == "degraded")
        assert any("no worker consumes" in p for p in status["problems"])
        assert (await watched.get("/health/ready")).status_code == 200
    finally:
        worker.start()
    await eventually(lambda: _status(watched), lambda s: s["status"] == "ok")


async def test_paused_replay_past_the_limit_degrades_status_but_not_readiness(
    watched: httpx.AsyncClient, replica: asyncpg.Connection
) -> None:
    client = await sign_up(watched)
    await replica.execute("SELECT pg_wal_replay_pause()")
    try:
        await create_item(watched, client, title="makes the replica fall behind")
        status = await eventually(lambda: _status(watched), lambda s: s["status"] == "degraded")
        assert status["replica_lag"]["paused"] is True
        assert status["replica_lag"]["bytes"] > 0
        assert status["replica_lag"]["seconds"] > LAG_LIMIT_S
        assert (await watched.get("/health/ready")).status_code == 200
    finally:
        await replica.execute("SELECT pg_wal_replay_resume()")
    status = await eventually(
        lambda: _status(watched), lambda s: s["status"] == "ok" and s["replica_lag"]["seconds"] == 0
    )
    assert status["replica_lag"]["paused"] is False


async def test_readiness_probes_do_not_query_the_databases_each_time(
    watched: httpx.AsyncClient, proxies: tuple[TcpProxy, CountingProxy]
) -> None:
    replica = proxies[1]
    assert (await watched.get("/health/ready")).status_code == 200
    before, started = replica.chunks, time.monotonic()
    for _ in range(50):
        assert (await watched.get("/health/ready")).status_code == 200
    forwarded, elapsed = replica.chunks - before, time.monotonic() - started
    print(f"\n50 readiness probes in {elapsed:.2f}s: {forwarded} chunks to and from the replica")
    assert forwarded < 50  # uncached, each probe costs the replica five queries and their answers


@pytest.mark.parametrize("which", ["broker", "replica"])
async def test_ready_is_503_only_while_the_broker_or_the_replica_is_unreachable(
    watched: httpx.AsyncClient, proxies: tuple[TcpProxy, CountingProxy], which: str
) -> None:
    proxy = proxies[0] if which == "broker" else proxies[1]
    proxy.cut()
    cut_at = time.monotonic()
    try:
        ready = await eventually(lambda: watched.get("/health/ready"), lambda r: r.status_code == 503)
        assert ready.json()["checks"][which] is False
        assert time.monotonic() - cut_at < 5  # the cached answers expire within a second or two
    finally:
        proxy.restore()
    await eventually(lambda: watched.get("/health/ready"), lambda r: r.status_code == 200, deadline_s=40)


def _worker_healthcheck() -> int:
    import os
    import subprocess
    import sys

    env = {**os.environ, **test_settings.ENV}
    return subprocess.run([sys.executable, "-m", "worker.healthcheck"], env=env, capture_output=True).returncode


async def test_the_worker_has_its_own_liveness_check(worker: Worker) -> None:
    await eventually(lambda: asyncio.to_thread(_worker_healthcheck), lambda code: code == 0)
    worker.stop()
    try:
        assert _worker_healthcheck() == 1
    finally:
        worker.start()
