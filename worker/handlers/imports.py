"""item.import: one chunk of an import. Valid rows go in with COPY; each bad row is reported alone."""

import functools
from typing import Any

from sqlalchemy import case, func, insert, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.fields import Status
from shared.contracts.imports import ImportChunk, ItemFields, check_rows
from shared.contracts.outcomes import OutcomeCode
from shared.models import CommandStatus, ImportJob, ImportJobChunk, ImportState, Item
from worker import repository
from worker.authorization import may_act_for
from worker.envelope import Envelope
from worker.handlers.result import Result, rejected

MAX_ERRORS = 100  # kept per import, in row order
ITEM_COLUMNS = ["title", "description", "status", "owner_id"]
DUPLICATE = "this chunk of the import was already applied: nothing done again"


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
    changes = {"import_id": str(chunk.import_id), "seq": chunk.seq, "applied": len(valid), "rejected": len(errors)}
    if not await claim_chunk(conn, chunk, applied=len(valid), rejected=len(errors)):
        # Answered like the first (as the inbox answers a redelivery): applied, with nothing done again.
        duplicate = {**changes, "duplicate": True, "applied": 0, "rejected": 0}
        return Result(CommandStatus.APPLIED, OutcomeCode.CREATED, detail=DUPLICATE, changes=duplicate)
    await insert_items(conn, chunk.owner_id, valid)
    await record_chunk(conn, chunk, applied=len(valid), rejected=len(errors), errors=errors[:MAX_ERRORS])
    return Result(CommandStatus.APPLIED, OutcomeCode.CREATED, changes=changes)


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


async def insert_items(conn: AsyncConnection, owner_id: int, items: list[ItemFields]) -> None:
    """COPY on PostgreSQL (inside the open transaction); one multi-row INSERT elsewhere."""
    if not items:
        return
    records = [(i["title"], i.get("description"), i.get("status", Status.PENDING).value, owner_id) for i in items]
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table("item", records=records, columns=ITEM_COLUMNS)  # type: ignore[union-attr]
    else:
        await conn.execute(insert(Item), [dict(zip(ITEM_COLUMNS, record, strict=True)) for record in records])


async def record_chunk(
    conn: AsyncConnection, chunk: ImportChunk, *, applied: int, rejected: int, errors: list[dict[str, Any]]
) -> None:
    """Create or advance the import job in one statement; the first MAX_ERRORS errors are kept."""
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
    await conn.execute(_upsert(postgres), values)


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
    return statement.on_conflict_do_update(
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


def _merged_errors() -> Any:
    return literal_column(
        f"CASE WHEN jsonb_array_length(import_job.errors) >= {MAX_ERRORS} THEN import_job.errors"
        " ELSE (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)"
        " FROM jsonb_array_elements(import_job.errors || excluded.errors) WITH ORDINALITY AS t(e, n)"
        f" WHERE n <= {MAX_ERRORS}) END"
    )
