"""The schema is built by Alembic: round trips, no drift from the models, offline DDL, canonical names."""

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import inspect
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
    assert "(owner_id, created_at DESC)" in definitions["ix_item_owner_created"]
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
