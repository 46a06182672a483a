"""item.import: one chunk of an import. Valid rows go in with COPY; each bad row is reported alone.

An applied chunk answers with its import's progress (`ImportProgress`: the outcome that completes
the import says `completed`, with the totals) and announces the items it created in one
`item.imported` event, through the outbox like every event.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.commands import CommandName
from shared.contracts.imports import ImportChunk, check_rows
from shared.contracts.outcomes import ImportProgress, OutcomeCode
from shared.models import CommandStatus
from worker import repository
from worker.authorization import may_act_for
from worker.envelope import Envelope
from worker.handlers.result import Announcement, Result, rejected
from worker.repository.imports import MAX_ERRORS, claim_chunk, current_job, insert_items, record_chunk

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
