"""The queries of item.import: the chunk claim, the rows (COPY on PostgreSQL) and the import job."""

import functools
from typing import Any

from sqlalchemy import RowMapping, case, func, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.fields import Status
from shared.contracts.imports import ImportChunk, ItemFields
from shared.models import ImportJob, ImportJobChunk, ImportState
from worker.repository import insert_items as insert_item_rows

MAX_ERRORS = 100  # kept per import, in row order
ITEM_COLUMNS = ["id", "title", "description", "status", "owner_id"]
# Ids drawn ahead, so that COPY (which returns nothing) writes rows whose ids we know. The sequence is
# named as a constant: looked up per row (pg_get_serial_sequence) it cost 3.5 times as much.
_RESERVE_IDS = text("SELECT nextval('item_id_seq') FROM generate_series(1, :n)")


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
        ids = await insert_item_rows(conn, rows)
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
