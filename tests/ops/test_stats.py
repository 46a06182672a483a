"""`opengovfood db stats` shows the statements the worker runs, to the owner role operators use."""

import re

import httpx
import pytest

from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.support.api import create_item, sign_up
from tests.support.processes import Gateway, Worker

OWNER_URL = f"postgresql+asyncpg://opengovfood_owner@127.0.0.1:{test_settings.PRIMARY_PORT}/{test_settings.DATABASE}"


@pytest.mark.postgres
async def test_stats_show_the_statements_the_worker_runs(stack: tuple[Worker, Gateway]) -> None:
    async with httpx.AsyncClient(base_url=stack[1].url, timeout=30) as http:
        client = await sign_up(http)
        assert (await create_item(http, client, title="counted")).status_code == 201
    env = {"DATABASE_URL": OWNER_URL, "READ_DATABASE_URL": OWNER_URL}
    out = opengovfood("db", "stats", "--limit", "1000", "--width", "40", env=env).stdout
    statements = [m[1] for line in out.splitlines() if (m := re.match(r"\s*\d+\s+[\d.]+\s+[\d.]+  (.*)", line))]
    # the worker's, by another role: its item.create call (migration 0010) and its inbox rows
    assert any(s.startswith("SELECT new_id, failed_state") for s in statements), out
    assert any(s.startswith("INSERT INTO command ") for s in statements), out
    assert "<insufficient privilege>" not in out
