"""`opengovfood db upgrade|downgrade|current|history`, `health`, `--version`, and asking before a mass replay."""

import tomllib
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.ops.cli import ROOT, opengovfood
from tests.ops.test_deadletters import HASH, listed, park
from tests.support.api import unique_email
from tests.support.bus import command_message
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker


def test_migrations_up_down_and_back(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "READ_DATABASE_URL": ""}
    opengovfood("db", "upgrade", env=env)
    head = opengovfood("db", "current", env=env).stdout.strip()
    assert head.endswith("(head)")
    history = opengovfood("db", "history", env=env).stdout
    assert "<base> -> 0001" in history
    opengovfood("db", "downgrade", "--", "-1", env=env)
    assert "(head)" not in opengovfood("db", "current", env=env).stdout
    opengovfood("db", "upgrade", env=env)
    assert opengovfood("db", "current", env=env).stdout.strip() == head


def test_health_exits_0_when_ready_and_1_when_unreachable(stack: tuple[Worker, Gateway]) -> None:
    ready = opengovfood("health", "--url", stack[1].url)
    assert '"status": "ok"' in ready.stdout
    assert opengovfood("health", "--url", "http://127.0.0.1:9", check=False).returncode == 1


def test_version_is_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert opengovfood("--version").stdout.strip() == f"opengovfood {version}"


@pytest.mark.rabbit
async def test_replay_all_asks_first(stack: tuple[Worker, Gateway], primary: asyncpg.Connection) -> None:
    email, command_id = unique_email("replay-all"), uuid.uuid4()
    body = {"email": email, "hashed_password": HASH, "full_name": "Replayed All"}
    await park("user.create", command_message(body, actor="anonymous", owner=email, command_id=command_id))
    await eventually(listed, lambda letters: str(command_id) in letters, deadline_s=10)

    for answer in ("n\n", ""):  # declined, and no terminal to answer at all
        declined = opengovfood("deadletters", "replay", "--all", answer=answer, check=False)
        assert declined.returncode == 1
        assert "Replay every message in opengovfood.dead-letter?" in declined.stdout
        assert str(command_id) in await listed()
    assert f"replayed {command_id}" in opengovfood("deadletters", "replay", "--all", "--yes").stdout

    async def status() -> str | None:
        return await primary.fetchval("SELECT status FROM command WHERE command_id = $1", command_id)

    assert await eventually(status, lambda value: value is not None, deadline_s=10) == "applied"
