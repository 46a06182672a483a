"""On the local cluster: `opengovfood import items` while the first broker of its list (RABBIT_URL's
node) is stopped publishes through the next one, and every row is applied once."""

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.cluster import nodes
from tests.imports.support import write_csv
from tests.imports.test_cli import _cli
from tests.support.api import sign_up
from tests.support.processes import Gateway, Worker

pytestmark = pytest.mark.rabbit


async def test_the_cli_imports_with_the_first_broker_down(
    stack: tuple[Worker, Gateway], primary: asyncpg.Connection, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=stack[1].url, timeout=30) as http:
        owner = await sign_up(http)
    good, bad = write_csv(tmp_path / "items.csv", 5_000)
    first = nodes.NODES[0]  # RABBIT_URL's node; RABBIT_FAILOVER_HOSTS names the other two
    await asyncio.to_thread(nodes.rabbitmqctl, first, "stop_app")
    try:
        started = time.monotonic()
        result = await asyncio.to_thread(_cli, str(tmp_path / "items.csv"), "--owner-id", str(owner.id))
        took = time.monotonic() - started
    finally:
        await asyncio.to_thread(nodes.rabbitmqctl, first, "start_app")
    print(f"\nimport of 5,000 rows with {first} stopped: {took:.1f} s, exit {result.returncode}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"completed: {len(good):,} applied, {len(bad)} rejected" in result.stdout
    titles = await primary.fetch("SELECT title FROM item WHERE owner_id = $1", owner.id)
    assert sorted(record["title"] for record in titles) == sorted(good)  # each once
