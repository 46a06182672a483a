"""`opengovfood db upgrade|downgrade|current|history` and `health`, as an operator runs them."""

from pathlib import Path

from tests.ops.cli import opengovfood
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
