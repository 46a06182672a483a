"""The schema is built by Alembic: round trips, no drift from the models, offline DDL, canonical names."""

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests import settings as test_settings
from tests.support.database import ROOT, alembic_config

CANONICAL_INDEXES = {
    "user": {"ix_user_email", "ix_user_id", "ix_user_created_at", "ix_active_users"},
    "item": {
        "ix_item_id", "ix_item_owner_id", "ix_item_status", "ix_item_created_at",
        "ix_item_owner_status", "ix_item_owner_created",
    },
}  # fmt: skip
MIGRATIONS_DB = f"{test_settings.DATABASE}_migrations"


@pytest.fixture(scope="module")
def postgres_url() -> str:
    async def recreate() -> None:
        admin = await asyncpg.connect(test_settings.ADMIN_DSN)
        await admin.execute(f"DROP DATABASE IF EXISTS {MIGRATIONS_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {MIGRATIONS_DB}")
        await admin.close()

    asyncio.run(recreate())
    return f"postgresql+asyncpg://postgres@127.0.0.1:{test_settings.PRIMARY_PORT}/{MIGRATIONS_DB}"


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path) -> str:
    return postgres_url if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/m.db"


def test_round_trip_and_no_drift(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)  # raises if autogenerate finds any difference from the models


def test_canonical_names_exist(url: str) -> None:
    command.upgrade(alembic_config(url), "head")

    async def names() -> tuple[dict[str, set[str]], set[str], list[dict[str, object]]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:

            def read(sync_conn):  # type: ignore[no-untyped-def]
                inspector = inspect(sync_conn)
                indexes = {t: {i["name"] for i in inspector.get_indexes(t)} for t in CANONICAL_INDEXES}
                checks = {c["name"] for c in inspector.get_check_constraints("item")}
                return indexes, checks, inspector.get_foreign_keys("item")

            result = await conn.run_sync(read)
        await engine.dispose()
        return result

    indexes, checks, foreign_keys = asyncio.run(names())
    for table, expected in CANONICAL_INDEXES.items():
        assert expected <= indexes[table], f"{table}: missing {expected - indexes[table]}"
    assert "check_item_status" in checks
    assert foreign_keys[0]["options"].get("ondelete") == "CASCADE"


def test_seed_constraint_names(url: str) -> None:
    """The seed's `unique_email` and `fk_item_owner`, beside the canonical unique index ix_user_email."""
    command.upgrade(alembic_config(url), "head")

    async def read() -> tuple[set[str | None], list[dict[str, object]], list[dict[str, object]]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:

            def names(sync_conn):  # type: ignore[no-untyped-def]
                inspector = inspect(sync_conn)
                unique = {c["name"] for c in inspector.get_unique_constraints("user")}
                return unique, inspector.get_foreign_keys("item"), inspector.get_indexes("user")

            result = await conn.run_sync(names)
        await engine.dispose()
        return result

    unique, foreign_keys, indexes = asyncio.run(read())
    assert "unique_email" in unique
    assert [(fk["name"], fk["referred_table"], fk["options"].get("ondelete")) for fk in foreign_keys] == [
        ("fk_item_owner", "user", "CASCADE")
    ]
    assert any(index["name"] == "ix_user_email" and index["unique"] for index in indexes)


def test_a_deleted_id_is_never_handed_out_again(url: str) -> None:
    """The seed's AUTOINCREMENT: on SQLite a plain INTEGER PRIMARY KEY would reuse the highest id."""
    command.upgrade(alembic_config(url), "head")

    async def ids() -> tuple[int, int, int, int]:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            new_user = text(
                "INSERT INTO \"user\" (email, hashed_password, full_name) VALUES (:email, 'h', 'N') RETURNING id"
            )
            new_item = text("INSERT INTO item (title, owner_id) VALUES ('t', :owner) RETURNING id")
            user = (await conn.execute(new_user, {"email": f"reuse-{uuid.uuid4()}@example.org"})).scalar_one()
            item = (await conn.execute(new_item, {"owner": user})).scalar_one()
            await conn.execute(text('DELETE FROM "user" WHERE id = :id'), {"id": user})  # the item goes by cascade
            again = (await conn.execute(new_user, {"email": f"reuse-{uuid.uuid4()}@example.org"})).scalar_one()
            item_again = (await conn.execute(new_item, {"owner": again})).scalar_one()
        await engine.dispose()
        return user, again, item, item_again

    user, again, item, item_again = asyncio.run(ids())
    assert again > user
    assert item_again > item


def test_sqlite_keeps_autoincrement_and_the_desc_index(tmp_path: Path) -> None:
    """SQLite rebuilds tables to alter them: what a rebuild could drop is still there at head."""
    database = tmp_path / "names.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{database}"), "head")
    with sqlite3.connect(database) as connection:
        ddl = dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    connection.close()
    assert "AUTOINCREMENT" in ddl["user"]
    assert "AUTOINCREMENT" in ddl["item"]
    assert "created_at DESC" in ddl["ix_item_owner_created"]


async def test_postgres_catalog_has_partial_desc_and_check(postgres_url: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(postgres_url), "head")
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{test_settings.PRIMARY_PORT}/{MIGRATIONS_DB}")
    try:
        definitions = dict(await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname='public'"))
        check = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'check_item_status'"
        )
        on_delete = await conn.fetchval(
            "SELECT confdeltype::text FROM pg_constraint WHERE conrelid = 'item'::regclass AND contype = 'f'"
        )
    finally:
        await conn.close()
    assert "WHERE is_active" in definitions["ix_active_users"]
    assert "(owner_id, created_at DESC, id DESC)" in definitions["ix_item_owner_created"]
    assert definitions["ix_user_email"].startswith("CREATE UNIQUE INDEX")
    for status in ("pending", "in_progress", "completed", "cancelled"):
        assert status in check
    assert on_delete == "c"  # ON DELETE CASCADE


@pytest.mark.parametrize("dialect_url", ["postgresql+asyncpg://u@h/db", "sqlite+aiosqlite:///x.db"])
def test_offline_mode_emits_the_ddl(dialect_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={dialect_url}", "upgrade", "head", "--sql"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for fragment in ("CREATE TABLE", "ix_item_owner_created", "check_item_status", "ix_active_users"):
        assert fragment in result.stdout
