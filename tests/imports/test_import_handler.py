"""The chunk handler on the embedded SQLite database: multi-row insert, job upsert, per-row errors."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateUser
from shared.contracts.headers import Actor
from shared.contracts.imports import ImportChunk, ImportRow
from shared.db import create_engine
from shared.models import ImportJob, Item
from shared.settings import get_settings
from tests.support.database import alembic_config
from worker.apply import apply_once
from worker.envelope import Envelope

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def envelope(name: CommandName, body: object, actor: Actor) -> Envelope:
    return Envelope(uuid.uuid4(), name, body, actor, None, None, datetime.now(UTC))  # type: ignore[arg-type]


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path}/embedded.db"
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    engine = create_engine(url, get_settings())
    yield engine
    await engine.dispose()


async def test_chunks_apply_valid_rows_and_count_into_one_job_on_sqlite(sqlite: AsyncEngine) -> None:
    signup = CreateUser(email="i@m.io", hashed_password=HASH, full_name="I")
    [user] = (await apply_once(sqlite, [envelope(CommandName.USER_CREATE, signup, Actor.anonymous())])).outcomes
    owner = user.resource_id
    assert owner is not None
    import_id = uuid.uuid4()
    first = [ImportRow(row=n, title=f"t{n}") for n in range(1, 4)] + [ImportRow(row=4, title="")]
    second = [ImportRow(row=5, title="u", status="cancelled"), ImportRow(row=6, invalid="not valid JSON")]
    chunks = [
        ImportChunk(import_id=import_id, seq=seq, total=2, owner_id=owner, rows=rows)
        for seq, rows in enumerate((first, second))
    ]
    applied = await apply_once(sqlite, [envelope(CommandName.ITEM_IMPORT, c, Actor.user(owner)) for c in chunks])
    outcomes = applied.outcomes
    assert [o.status for o in outcomes] == ["applied", "applied"]

    async with sqlite.connect() as conn:
        job = (await conn.execute(select(ImportJob.__table__))).one()
        items = (await conn.execute(select(func.count()).select_from(Item))).scalar_one()
    assert (job.state, job.chunks_done, job.applied, job.rejected) == ("completed", 2, 4, 2)
    assert [e["row"] for e in job.errors] == [4, 6]
    assert items == 4
