"""`opengovfood import items FILE --owner-id N` (run here as `python -m cli.imports`)."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from tests import settings as test_settings
from tests.imports.support import write_csv
from tests.support.api import sign_up
from tests.support.processes import ROOT


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **test_settings.ENV, "COLUMNS": "200"}
    command = [sys.executable, "-m", "cli.imports", "items", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


async def test_the_cli_imports_a_csv_and_prints_a_summary(
    http: httpx.AsyncClient, primary: asyncpg.Connection, tmp_path: Path
) -> None:
    owner = await sign_up(http)
    good, bad = write_csv(tmp_path / "items.csv", 3_000)
    result = await asyncio.to_thread(_cli, str(tmp_path / "items.csv"), "--owner-id", str(owner.id))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3,000 rows in 3 chunks" in result.stdout
    assert f"completed: {len(good):,} applied, {len(bad)} rejected" in result.stdout
    assert f"row {bad[0][0]}: title" in result.stdout
    assert "rows/s" in result.stdout
    assert await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", owner.id) == len(good)


async def test_the_cli_refuses_a_file_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("name\nx\n")
    result = await asyncio.to_thread(_cli, str(tmp_path / "bad.csv"), "--owner-id", "1")
    assert result.returncode == 2
    assert "header" in result.stdout
