"""The chunk handler on the embedded SQLite database: multi-row insert, job upsert, per-row errors."""

import json
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateUser
from shared.contracts.headers import Actor
from shared.contracts.imports import ImportChunk, ImportRow
from shared.models import Command, ImportJob, Item
from tests.support.embedded import HASH, envelope
from worker.handlers.imports import DUPLICATE
from worker.unit_of_work import UnitOfWork


async def test_chunks_apply_valid_rows_and_count_into_one_job_on_sqlite(sqlite: AsyncEngine) -> None:
    signup = CreateUser(email="i@m.io", hashed_password=HASH, full_name="I")
    [user] = (await UnitOfWork(sqlite).apply([envelope(CommandName.USER_CREATE, signup, Actor.anonymous())])).outcomes
    owner = user.resource_id
    assert owner is not None
    import_id = uuid.uuid4()
    first = [ImportRow(row=n, title=f"t{n}") for n in range(1, 4)] + [ImportRow(row=4, title="")]
    second = [ImportRow(row=5, title="u", status="cancelled"), ImportRow(row=6, invalid="not valid JSON")]
    chunks = [
        ImportChunk(import_id=import_id, seq=seq, total=2, owner_id=owner, rows=rows)
        for seq, rows in enumerate((first, second))
    ]
    applied = await UnitOfWork(sqlite).apply([envelope(CommandName.ITEM_IMPORT, c, Actor.user(owner)) for c in chunks])
    outcomes = applied.outcomes
    assert [o.status for o in outcomes] == ["applied", "applied"]

    async with sqlite.connect() as conn:
        job = (await conn.execute(select(ImportJob.__table__))).one()
        items = (await conn.execute(select(Item.id, Item.title, Item.status).order_by(Item.id))).all()
    assert (job.state, job.chunks_done, job.applied, job.rejected) == ("completed", 2, 4, 2)
    assert [e["row"] for e in job.errors] == [4, 6]
    assert len(items) == 4
    progress = [o.import_progress for o in outcomes]
    assert [(p.seq, p.applied, p.rejected, p.chunks_done, p.state) for p in progress if p] == [
        (0, 3, 1, 1, "running"),
        (1, 1, 1, 2, "completed"),
    ]
    assert (progress[1].import_applied, progress[1].import_rejected) == (4, 2)  # type: ignore[union-attr]
    assert [[(e.row, e.error[:6]) for e in p.errors] for p in progress if p] == [[(4, "title:")], [(6, "not va")]]
    announced = [json.loads(event.body) for event in applied.events]
    assert [(e["name"], e["resource_id"], e["data"]["seq"]) for e in announced] == [
        ("item.imported", owner, 0),
        ("item.imported", owner, 1),
    ]
    listed = [(i["id"], i["title"], i["status"]) for e in announced for i in e["data"]["items"]]
    assert listed == [tuple(item) for item in items]


async def test_a_chunk_republished_with_a_new_message_id_has_one_effect_on_sqlite(sqlite: AsyncEngine) -> None:
    signup = CreateUser(email="r@m.io", hashed_password=HASH, full_name="R")
    [user] = (await UnitOfWork(sqlite).apply([envelope(CommandName.USER_CREATE, signup, Actor.anonymous())])).outcomes
    owner = user.resource_id
    assert owner is not None
    chunk = ImportChunk(import_id=uuid.uuid4(), seq=0, total=2, owner_id=owner, rows=[ImportRow(row=1, title="t")])
    twice = [envelope(CommandName.ITEM_IMPORT, chunk, Actor.user(owner)) for _ in range(2)]  # two message ids
    first = (await UnitOfWork(sqlite).apply(twice[:1])).outcomes
    repeated = await UnitOfWork(sqlite).apply(twice[1:])
    again = repeated.outcomes
    assert repeated.events == []  # it created nothing: nothing to announce
    assert [(o.status, o.code, o.detail) for o in first] == [("applied", "created", None)]
    assert [(o.status, o.code, o.detail) for o in again] == [("applied", "created", DUPLICATE)]

    async with sqlite.connect() as conn:
        job = (await conn.execute(select(ImportJob.__table__))).one()
        items = (await conn.execute(select(func.count()).select_from(Item))).scalar_one()
        changes = (
            await conn.execute(select(Command.changes).where(Command.command_id == twice[1].command_id))
        ).scalar_one()
    assert (job.state, job.chunks_done, job.applied, job.rejected) == ("running", 1, 1, 0)
    assert items == 1
    assert changes == {
        "import_id": str(chunk.import_id),
        "seq": 0,
        "applied": 0,
        "rejected": 0,
        "errors": [],
        "duplicate": True,
        "chunks_done": 1,
        "total_chunks": 2,
        "state": "running",
        "import_applied": 1,
        "import_rejected": 0,
    }
    assert again[0].import_progress is not None
    assert again[0].import_progress.duplicate
