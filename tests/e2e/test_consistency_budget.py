"""A consistency token costs a request at most one bounded wait, and fallbacks cannot flood the primary."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from gateway.infrastructure.consistency import FALLBACK_SLOTS
from tests import settings as test_settings
from tests.support.api import Client, create_item, sign_up
from tests.support.processes import Gateway

WAIT_S = 1.5  # CONSISTENCY_WAIT: one wait is this long, two would take at least twice as long
PAST_THE_PRIMARY = "FFFFFFFF/FFFFFFF0"
GATEWAY_BACKENDS = """
    SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = 'opengovfood_gateway'
"""


@pytest.fixture(scope="module")
def waiting_gateway(worker) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with Gateway(env={"CONSISTENCY_WAIT": str(WAIT_S)}) as gateway:
        yield gateway


@pytest.fixture
async def waiting(waiting_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=waiting_gateway.url, timeout=30) as client:
        yield client


async def _timed_read(http: httpx.AsyncClient, client: Client, path: str, token: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.get(path, headers={**client.headers, "X-Consistency-Token": token})
    return response, time.monotonic() - started


async def test_with_replay_paused_a_fresh_token_costs_one_wait_not_one_per_read(
    waiting: httpx.AsyncClient, replica: asyncpg.Connection
) -> None:
    client = await sign_up(waiting)
    await replica.execute("SELECT pg_wal_replay_pause()")
    try:
        created = await create_item(waiting, client, title="written while paused")
        path, token = f"/api/v1/items/{created.json()['id']}", created.headers["X-Consistency-Token"]
        read, elapsed = await _timed_read(waiting, client, path, token)  # caller lookup + item read
    finally:
        await replica.execute("SELECT pg_wal_replay_resume()")
    print(f"\ntoken read with replay paused, CONSISTENCY_WAIT={WAIT_S}: {elapsed:.2f}s")
    assert read.status_code == 200
    assert read.headers["X-Served-By"] == "primary"
    assert WAIT_S - 0.05 < elapsed < 2 * WAIT_S  # one wait, with WAIT_S of slack for a loaded machine


async def test_a_token_past_the_primary_costs_no_wait(waiting: httpx.AsyncClient) -> None:
    client = await sign_up(waiting)
    created = await create_item(waiting, client, title="read with a token from nowhere")
    path = f"/api/v1/items/{created.json()['id']}"
    read, elapsed = await _timed_read(waiting, client, path, PAST_THE_PRIMARY)
    print(f"\nread with a token past the primary: {elapsed:.3f}s")
    assert read.status_code == 200
    assert read.headers["X-Served-By"] == "primary"  # no replica will ever replay it
    assert elapsed < WAIT_S - 0.1  # a wait would have lasted WAIT_S: the replica never replays it


async def test_a_flood_of_fallback_reads_holds_only_a_few_primary_connections(
    waiting: httpx.AsyncClient, replica: asyncpg.Connection, primary: asyncpg.Connection
) -> None:
    client = await sign_up(waiting)
    created = await create_item(waiting, client, title="read forty times at once")
    path = f"/api/v1/items/{created.json()['id']}"
    before = {row["pid"] for row in await primary.fetch(GATEWAY_BACKENDS, test_settings.DATABASE)}
    await replica.execute("SELECT pg_wal_replay_pause()")
    try:
        fresh = await create_item(waiting, client, title="makes every token fresh")
        token = fresh.headers["X-Consistency-Token"]
        reads = await asyncio.gather(*(_timed_read(waiting, client, path, token) for _ in range(40)))
        during = {row["pid"] for row in await primary.fetch(GATEWAY_BACKENDS, test_settings.DATABASE)}
    finally:
        await replica.execute("SELECT pg_wal_replay_resume()")
    answers = Counter(response.status_code for response, _ in reads)
    opened = len(during - before)
    print(f"\n40 concurrent fallback reads: {dict(answers)}, {opened} new primary connections")
    assert set(answers) <= {200, 503}
    assert answers[200] > 0
    assert all("Retry-After" in response.headers for response, _ in reads if response.status_code == 503)
    assert opened <= FALLBACK_SLOTS + 1  # + the one that reads the primary's WAL position
