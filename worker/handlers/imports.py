"""item.import: one chunk of an import. Valid rows go in with COPY; each bad row is reported alone.

An applied chunk answers with its import's progress (`ImportProgress`: the outcome that completes
the import says `completed`, with the totals) and announces the items it created in one
`item.imported` event, through the outbox like every event.
"""

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import RowMapping, case, func, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.commands import CommandName
from shared.contracts.fields import Status
from shared.contracts.imports import ImportChunk, ItemFields, check_rows
from shared.contracts.outcomes import ImportProgress, OutcomeCode
from shared.models import CommandStatus, ImportJob, ImportJobChunk, ImportState
from worker import repository
from worker.authorization import may_act_for
from worker.envelope import Envelope
from worker.handlers.result import Announcement, Result, rejected

MAX_ERRORS = 100  # kept per import, in row order
ITEM_COLUMNS = ["id", "title", "description", "status", "owner_id"]
DUPLICATE = "this chunk of the import was already applied: nothing done again"
# Ids drawn ahead, so that COPY (which returns nothing) writes rows whose ids we know. The sequence is
# named as a constant: looked up per row (pg_get_serial_sequence) it cost 3.5 times as much.
_RESERVE_IDS = text("SELECT nextval('item_id_seq') FROM generate_series(1, :n)")


async def import_items(conn: AsyncConnection, envelope: Envelope[ImportChunk]) -> Result:
    """Apply the valid rows of one chunk and add its counts to the import job, in this transaction."""
    chunk = envelope.body
    if not may_act_for(envelope, chunk.owner_id):
        return rejected(OutcomeCode.NOT_FOUND, "no such owner")
    owner = await repository.get_user(conn, chunk.owner_id)
    valid, rejected_rows = check_rows(chunk.rows)
    errors = [{"row": row, "error": reason} for row, reason in rejected_rows]
    if owner is None or owner.is_active is False:
        reason = "no such owner" if owner is None else "the owner is not active"
        valid, errors = [], [{"row": row["row"], "error": reason} for row in chunk.rows]
    if not await claim_chunk(conn, chunk, applied=len(valid), rejected=len(errors)):
        # Answered like the first (as the inbox answers a redelivery): applied, with nothing done again.
        job = await current_job(conn, chunk)
        changes = _changes(chunk, job, applied=0, errors=[], duplicate=True)
        return Result(CommandStatus.APPLIED, OutcomeCode.CREATED, detail=DUPLICATE, changes=changes)
    items = await insert_items(conn, chunk.owner_id, valid)
    job = await record_chunk(conn, chunk, applied=len(valid), rejected=len(errors), errors=errors[:MAX_ERRORS])
    changes = _changes(chunk, job, applied=len(valid), errors=errors)
    data = {"import_id": str(chunk.import_id), "seq": chunk.seq, "items": items}
    announce = Announcement(chunk.owner_id, data) if items else None  # a chunk that created nothing announces nothing
    return Result(CommandStatus.APPLIED, OutcomeCode.CREATED, changes=changes, announce=announce)


def _changes(
    chunk: ImportChunk, job: RowMapping | None, *, applied: int, errors: list[dict[str, Any]], duplicate: bool = False
) -> dict[str, Any]:
    """The audit record of a chunk: its counts and first errors, and its import's progress (none for
    another owner's import)."""
    changes: dict[str, Any] = {"import_id": str(chunk.import_id), "seq": chunk.seq, "applied": applied}
    changes |= {"rejected": len(errors), "errors": errors[:MAX_ERRORS]} | ({"duplicate": True} if duplicate else {})
    if job is None:
        return changes
    progress = {
        "chunks_done": job["chunks_done"],
        "total_chunks": job["total_chunks"],
        "state": job["state"],
        "import_applied": job["applied"],
        "import_rejected": job["rejected"],
    }
    return changes | progress


def import_progress(name: str, changes: Mapping[str, Any] | None) -> ImportProgress | None:
    """The progress an item.import outcome carries (None for other commands and chunks without one)."""
    if name != CommandName.ITEM_IMPORT or not changes or "state" not in changes:
        return None
    return ImportProgress.model_validate(changes)


async def claim_chunk(conn: AsyncConnection, chunk: ImportChunk, *, applied: int, rejected: int) -> bool:
    """Claim (import_id, owner_id, seq) in this transaction; False if that chunk was already applied.

    The inbox catches a redelivery (same message id); this catches the same chunk republished under
    a new message id. The key includes owner_id on purpose: the job upsert ignores a chunk naming
    another owner's import (its WHERE), but with a key of (import_id, seq) alone such a chunk would
    still take the slot and the real owner's chunk would then be dropped as a duplicate. Called
    after may_act_for, so owner_id is an owner this actor may act for: a claim only ever blocks
    that owner's own repeats.
    """
    key = {"import_id": chunk.import_id, "owner_id": chunk.owner_id, "seq": chunk.seq}
    result: Any = await conn.execute(
        _claim(conn.dialect.name == "postgresql"), {**key, "applied": applied, "rejected": rejected}
    )
    return bool(result.rowcount)


async def insert_items(conn: AsyncConnection, owner_id: int, items: list[ItemFields]) -> list[dict[str, Any]]:
    """Insert the rows; return each as `item.imported` lists it (with its id), in row order.

    PostgreSQL: ids drawn from the item sequence in one query, then COPY (inside the open
    transaction). Elsewhere: one multi-row INSERT … RETURNING.
    """
    if not items:
        return []
    rows = [
        {"owner_id": owner_id, "title": i["title"], "description": i.get("description"),
         "status": i.get("status", Status.PENDING).value}
        for i in items
    ]  # fmt: skip
    if conn.dialect.name == "postgresql":
        ids = sorted((await conn.execute(_RESERVE_IDS, {"n": len(rows)})).scalars())
        records = [(id_, r["title"], r["description"], r["status"], owner_id) for id_, r in zip(ids, rows, strict=True)]
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table("item", records=records, columns=ITEM_COLUMNS)  # type: ignore[union-attr]
    else:
        ids = await repository.insert_items(conn, rows)
    return [{"id": id_, **row} for id_, row in zip(ids, rows, strict=True)]


async def record_chunk(
    conn: AsyncConnection, chunk: ImportChunk, *, applied: int, rejected: int, errors: list[dict[str, Any]]
) -> RowMapping | None:
    """Create or advance the import job in one statement (the first MAX_ERRORS errors are kept);
    return the job as it now stands (None: the import is another owner's, left unchanged)."""
    table = ImportJob.__table__
    postgres = conn.dialect.name == "postgresql"
    if not postgres:  # SQLite serialises writers: merging the error list here is safe
        current = await conn.scalar(select(table.c.errors).where(table.c.id == chunk.import_id))
        errors = ((current or []) + errors)[:MAX_ERRORS]
    values = {
        "id": chunk.import_id,
        "owner_id": chunk.owner_id,
        "total_chunks": chunk.total,
        "chunks_done": 1,
        "applied": applied,
        "rejected": rejected,
        "state": ImportState.COMPLETED.value if chunk.total <= 1 else ImportState.RUNNING.value,
        "errors": errors,
    }
    job = (await conn.execute(_upsert(postgres), values)).first()
    return None if job is None else job._mapping


async def current_job(conn: AsyncConnection, chunk: ImportChunk) -> RowMapping | None:
    """The chunk's import job as it stands, if it is the chunk owner's."""
    table = ImportJob.__table__
    query = select(*_JOB_FIGURES).where(table.c.id == chunk.import_id, table.c.owner_id == chunk.owner_id)
    job = (await conn.execute(query)).first()
    return None if job is None else job._mapping


_JOB_FIGURES = [ImportJob.__table__.c[name] for name in ("chunks_done", "total_chunks", "state", "applied", "rejected")]


@functools.cache
def _claim(postgres: bool) -> Any:
    return (postgresql.insert if postgres else sqlite.insert)(ImportJobChunk).on_conflict_do_nothing()


@functools.cache
def _upsert(postgres: bool) -> Any:
    """The job upsert, built once per dialect (constructing it per chunk was a visible cost)."""
    table = ImportJob.__table__
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    statement = dialect_insert(ImportJob)
    excluded = statement.excluded
    total = (func.greatest if postgres else func.max)(table.c.total_chunks, excluded.total_chunks)
    done = table.c.chunks_done + 1
    upsert = statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={
            "total_chunks": total,
            "chunks_done": done,
            "applied": table.c.applied + excluded.applied,
            "rejected": table.c.rejected + excluded.rejected,
            "state": case((done >= total, ImportState.COMPLETED.value), else_=ImportState.RUNNING.value),
            "errors": _merged_errors() if postgres else excluded.errors,
            "updated_at": func.now(),
        },
        where=table.c.owner_id == excluded.owner_id,  # a chunk naming another owner's import changes nothing
    )
    return upsert.returning(*_JOB_FIGURES)


def _merged_errors() -> Any:
    return literal_column(
        f"CASE WHEN jsonb_array_length(import_job.errors) >= {MAX_ERRORS} THEN import_job.errors"
        " ELSE (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)"
        " FROM jsonb_array_elements(import_job.errors || excluded.errors) WITH ORDINALITY AS t(e, n)"
        f" WHERE n <= {MAX_ERRORS}) END"
    )
