"""`opengovfood db backup` / `db restore`: create data, back up, wipe, restore, compare."""

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import asyncpg
import pytest

from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.support.scratch import recreate_database as recreate

ITEMS = 100_000
USERS = 100
BACKUP_DATABASE = f"{test_settings.DATABASE}_backup"
BACKUP_URL = f"postgresql+asyncpg://postgres@127.0.0.1:{test_settings.PRIMARY_PORT}/{BACKUP_DATABASE}"
BACKUP_DSN = f"postgresql://postgres@127.0.0.1:{test_settings.PRIMARY_PORT}/{BACKUP_DATABASE}"
FINGERPRINT = """
SELECT (SELECT count(*) FROM "user") AS users, (SELECT count(*) FROM item) AS items,
       (SELECT md5(string_agg(concat_ws('|', id, email, hashed_password, full_name, is_active, created_at), ','
                   ORDER BY id)) FROM "user") AS users_md5,
       (SELECT md5(string_agg(concat_ws('|', id, title, description, status, owner_id, created_at), ','
                   ORDER BY id)) FROM item) AS items_md5,
       (SELECT version_num FROM alembic_version) AS revision
"""


async def recreate_database() -> None:
    await recreate(BACKUP_DATABASE)


def fresh_database() -> dict[str, str]:
    """An empty database at Alembic head, and the environment that points the CLI at it."""
    env = {"DATABASE_URL": BACKUP_URL, "READ_DATABASE_URL": BACKUP_URL}
    asyncio.run(recreate_database())
    opengovfood("db", "upgrade", env=env)
    return env


async def fill_and_fingerprint(fill: bool) -> dict[str, object]:
    connection = await asyncpg.connect(BACKUP_DSN)
    try:
        if fill:
            await connection.execute(
                """INSERT INTO "user" (email, hashed_password, full_name)
                   SELECT 'backup-' || n || '@example.org', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$' || md5(n::text),
                          'User ' || n FROM generate_series(1, $1) AS n""",
                USERS,
            )
            await connection.execute(
                """INSERT INTO item (title, description, status, owner_id)
                   SELECT 'item ' || n, CASE WHEN n % 3 = 0 THEN NULL ELSE repeat('d', n % 50) END,
                          (ARRAY['pending','in_progress','completed','cancelled'])[n % 4 + 1],
                          (SELECT min(id) FROM "user") + n % $2
                   FROM generate_series(1, $1) AS n""",
                ITEMS,
                USERS,
            )
        return dict(await connection.fetchrow(FINGERPRINT))
    finally:
        await connection.close()


@pytest.mark.postgres
def test_postgres_backup_round_trip(tmp_path: Path) -> None:
    env = fresh_database()
    assert "(head)" in opengovfood("db", "current", env=env).stdout
    before = asyncio.run(fill_and_fingerprint(fill=True))
    assert before["items"] == ITEMS

    dump = tmp_path / "opengovfood.dump"
    started = time.monotonic()
    opengovfood("db", "backup", str(dump), env=env)
    backup_s = time.monotonic() - started
    asyncio.run(recreate_database())  # the wipe: an empty database
    started = time.monotonic()
    opengovfood("db", "restore", "--yes", str(dump), env=env)
    restore_s = time.monotonic() - started

    assert asyncio.run(fill_and_fingerprint(fill=False)) == before
    print(f"\nbackup round trip: {ITEMS} items, {USERS} users, dump {dump.stat().st_size} bytes, "
          f"backup {backup_s:.2f}s, restore {restore_s:.2f}s")  # fmt: skip
    assert "item" in opengovfood("db", "stats", env=env).stdout


def sqlite_fingerprint(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        users = connection.execute('SELECT * FROM "user" ORDER BY id').fetchall()
        items = connection.execute("SELECT * FROM item ORDER BY id").fetchall()
    connection.close()
    return [*users, *items]


def test_sqlite_backup_round_trip(tmp_path: Path) -> None:
    database = tmp_path / "opengovfood.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "READ_DATABASE_URL": ""}
    opengovfood("db", "upgrade", env=env)
    with sqlite3.connect(database) as connection:
        connection.execute(
            """INSERT INTO "user" (email, hashed_password, full_name) VALUES ('a@example.org', 'h', 'A')"""
        )
        connection.executemany(
            "INSERT INTO item (title, status, owner_id) VALUES (?, 'pending', 1)", [(f"item {n}",) for n in range(500)]
        )
    connection.close()
    before = sqlite_fingerprint(database)
    assert len(before) == 501

    backup = tmp_path / "backup.db"
    opengovfood("db", "backup", str(backup), env=env)
    database.unlink()  # the wipe
    opengovfood("db", "restore", "--yes", str(backup), env=env)
    assert sqlite_fingerprint(database) == before
    assert "top queries need PostgreSQL" in opengovfood("db", "stats", env=env).stdout


PRUNE_FIXTURE = """
INSERT INTO command (command_id, name, status, code, actor, received_at, applied_at) VALUES
  (gen_random_uuid(), 'item.create', 'applied', 'created', 'user:1', now() - interval '40 d', now() - interval '40 d'),
  (gen_random_uuid(), 'item.create', 'applied', 'created', 'user:1', now(), now());
INSERT INTO outbox (command_id, partition, name, payload, created_at, published_at) VALUES
  (gen_random_uuid(), 0, 'item.created', '{}', now() - interval '40 days', now() - interval '40 days'),
  (gen_random_uuid(), 0, 'item.created', '{}', now() - interval '40 days', NULL),
  (gen_random_uuid(), 0, 'item.created', '{}', now(), now());
INSERT INTO import_job (id, owner_id, total_chunks, chunks_done, applied, rejected, state, errors, updated_at) VALUES
  ('00000000-0000-0000-0000-00000000000a', 1, 2, 2, 2, 0, 'completed', '[]', now() - interval '40 days'),
  ('00000000-0000-0000-0000-00000000000b', 1, 2, 1, 1, 0, 'running', '[]', now() - interval '40 days'),
  ('00000000-0000-0000-0000-00000000000c', 1, 1, 1, 1, 0, 'completed', '[]', now());
INSERT INTO import_chunk (import_id, owner_id, seq, applied, rejected) VALUES
  ('00000000-0000-0000-0000-00000000000a', 1, 0, 1, 0), ('00000000-0000-0000-0000-00000000000a', 1, 1, 1, 0),
  ('00000000-0000-0000-0000-00000000000b', 1, 0, 1, 0), ('00000000-0000-0000-0000-00000000000c', 1, 0, 1, 0);
"""
IMPORTS_LEFT = "SELECT string_agg(right(id::text, 1), '' ORDER BY id) FROM import_job"
CHUNKS_LEFT = "SELECT string_agg(right(import_id::text, 1), '' ORDER BY import_id, seq) FROM import_chunk"


async def prune_counts(setup: bool) -> tuple[int, int, str, str]:
    """Rows left in command and outbox, and which imports (a, b, c) have a job and chunks left."""
    connection = await asyncpg.connect(BACKUP_DSN)
    try:
        if setup:
            await connection.execute("TRUNCATE command, outbox, import_job, import_chunk")
            await connection.execute(PRUNE_FIXTURE)
        return (
            await connection.fetchval("SELECT count(*) FROM command"),
            await connection.fetchval("SELECT count(*) FROM outbox"),
            await connection.fetchval(IMPORTS_LEFT),
            await connection.fetchval(CHUNKS_LEFT),
        )
    finally:
        await connection.close()


@pytest.fixture
def prunable() -> dict[str, str]:
    """A database with old and recent outcomes, events and imports; the environment that points at it."""
    env = fresh_database()
    assert asyncio.run(prune_counts(setup=True)) == (2, 3, "abc", "aabc")
    return env


@pytest.mark.postgres
def test_prune_keeps_recent_outcomes_unpublished_events_and_unfinished_imports(prunable: dict[str, str]) -> None:
    out = opengovfood("db", "prune", "--older-than", "30", env=prunable).stdout
    assert "command: 1 rows deleted" in out
    assert "outbox: 1 rows deleted" in out
    assert "import_chunk: 2 rows deleted" in out
    assert "import_job: 1 rows deleted" in out
    # the unpublished event stays, however old; so do the running import and the recent one, with their chunks
    assert asyncio.run(prune_counts(setup=False)) == (1, 2, "bc", "bc")


@pytest.mark.postgres
def test_prune_dry_run_counts_and_deletes_nothing(prunable: dict[str, str]) -> None:
    out = opengovfood("db", "prune", "--older-than", "30", "--dry-run", env=prunable).stdout
    for line in ("command: 1", "outbox: 1", "import_chunk: 2", "import_job: 1"):
        assert f"{line} rows would be deleted" in out
    assert asyncio.run(prune_counts(setup=False)) == (2, 3, "abc", "aabc")


@pytest.mark.postgres
def test_prune_refuses_a_window_shorter_than_the_idempotency_key_promise(prunable: dict[str, str]) -> None:
    refused = opengovfood("db", "prune", "--older-than", "0.5", env=prunable, check=False)
    assert refused.returncode == 2
    assert "24 h an Idempotency-Key is honoured" in " ".join(re.sub("[│╭╮╰╯─]", " ", refused.stderr).split())
    assert asyncio.run(prune_counts(setup=False)) == (2, 3, "abc", "aabc")
    assert opengovfood("db", "prune", "--older-than", "1", "--dry-run", env=prunable).returncode == 0  # 24 h is enough
    opengovfood("db", "prune", "--older-than", "0.5", "--force", env=prunable)
    assert asyncio.run(prune_counts(setup=False)) == (1, 2, "bc", "bc")


async def _outcomes_aged(days: list[float]) -> list[int]:
    """Put one applied outcome of each age in days (with no other); the ages left, in hours."""
    connection = await asyncpg.connect(BACKUP_DSN)
    try:
        if days:
            await connection.execute("TRUNCATE command")
            await connection.executemany(
                "INSERT INTO command (command_id, name, status, code, actor, received_at, applied_at)"
                " VALUES (gen_random_uuid(), 'item.create', 'applied', 'created', 'user:1',"
                " now() - make_interval(hours => $1), now() - make_interval(hours => $1))",
                [(int(d * 24),) for d in days],
            )
        ages = await connection.fetch("SELECT extract(epoch FROM now() - applied_at) / 3600 AS h FROM command")
        return sorted(round(float(row["h"])) for row in ages)
    finally:
        await connection.close()


@pytest.mark.postgres
def test_prune_keeps_30_days_by_default(prunable: dict[str, str]) -> None:
    asyncio.run(_outcomes_aged([29.5, 30.5, 1]))
    assert "command: 1 rows deleted" in opengovfood("db", "prune", env=prunable).stdout
    assert asyncio.run(_outcomes_aged([])) == [24, 708]  # 1 and 29.5 days stay: only 30.5 days went


async def user_count() -> int:
    connection = await asyncpg.connect(BACKUP_DSN)
    try:
        return int(await connection.fetchval('SELECT count(*) FROM "user"'))
    finally:
        await connection.close()


@pytest.mark.postgres
def test_restore_replaces_the_database_only_when_the_operator_agrees(tmp_path: Path) -> None:
    env = fresh_database()
    asyncio.run(fill_and_fingerprint(fill=True))
    dump = tmp_path / "before.dump"
    opengovfood("db", "backup", str(dump), env=env)
    fresh_database()  # what the restore would undo

    for answer in ("n\n", ""):  # declined, and no terminal to answer at all
        declined = opengovfood("db", "restore", str(dump), env=env, check=False, answer=answer)
        assert declined.returncode == 1
        assert "Replace everything in postgresql+asyncpg://postgres@" in declined.stdout
        assert asyncio.run(user_count()) == 0
    opengovfood("db", "restore", str(dump), env=env, answer="y\n")
    assert asyncio.run(user_count()) == USERS
