"""Imports: upload a CSV or JSON Lines file (streamed to disk, split into chunks on the bus), follow it."""

import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.deps import CurrentUser, ServicesDep, TokenDep
from gateway.limits import get_limits
from gateway.problems import Problem
from shared.db import ReadSession
from shared.importer import CONTENT_TYPES, SourceError, publish_import
from shared.models import ImportJob, ImportState
from shared.publishing import NotConfirmed

router = APIRouter(prefix="/imports", tags=["imports"])
RETRY_AFTER_S = "2"


class ImportAccepted(BaseModel):
    """202: every chunk is on the bus; follow Location for the progress."""

    import_id: uuid.UUID
    rows: int
    chunks: int
    state: ImportState = ImportState.PENDING


class RowError(BaseModel):
    row: int
    error: str


class ImportRead(BaseModel):
    """An import's progress: `completed` once every chunk is applied."""

    import_id: uuid.UUID
    state: ImportState
    total_chunks: int | None = None
    chunks_done: int = 0
    applied: int = 0
    rejected: int = 0
    errors: list[RowError] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None


def location(import_id: uuid.UUID) -> str:
    return f"/api/v1/imports/{import_id}"


async def _spool(request: Request, path: Path, cap: int) -> None:
    """Write the request body to `path` as it arrives; 413 past the cap."""
    size = 0
    try:
        async with await anyio.open_file(path, "wb") as file:
            async for part in request.stream():
                size += len(part)
                if size > cap:
                    raise Problem(413, f"an import may be at most {cap} bytes")
                await file.write(part)
    except ExceptionGroup as group:  # the edge limit's 413, raised in receive, arrives wrapped by a middleware
        if group.subgroup(lambda error: isinstance(error, Problem) and error.status_code == 413) is None:
            raise
        raise Problem(413, f"an import may be at most {cap} bytes") from None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportAccepted,
    openapi_extra={"requestBody": {"content": {t: {"schema": {"type": "string"}} for t in CONTENT_TYPES}}},
)
async def upload(
    request: Request,
    user: CurrentUser,
    services: ServicesDep,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    """Import items for the caller from text/csv (header title,description,status) or application/x-ndjson."""
    fmt = CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if fmt is None:
        raise Problem(415, f"send text/csv or application/x-ndjson, not {content_type!r}")
    import_id = uuid.uuid4()
    with (
        get_limits(request).uploads.hold(user.id),
        tempfile.TemporaryDirectory(prefix="opengovfood-import-") as directory,
    ):
        path = Path(directory) / f"upload.{fmt.value}"
        await _spool(request, path, services.settings.max_import_bytes)
        try:
            published = await publish_import(services.bus.publisher, path, fmt, owner_id=user.id, import_id=import_id)
        except SourceError as error:
            raise Problem(422, str(error)) from None
        except NotConfirmed:
            raise Problem(
                503,
                "the message broker did not confirm every chunk; some may be applied",
                headers={"Retry-After": RETRY_AFTER_S},
                import_id=str(import_id),
            ) from None
    body = ImportAccepted(import_id=import_id, rows=published.rows, chunks=published.chunks)
    return JSONResponse(body.model_dump(mode="json"), 202, headers={"Location": location(import_id)})


async def _get_job(session: ReadSession, import_id: uuid.UUID) -> ImportJob | None:
    return await session.get(ImportJob, import_id)


@router.get("/{import_id}", response_model=ImportRead)
async def read_import(import_id: uuid.UUID, user: CurrentUser, services: ServicesDep, token: TokenDep) -> ImportRead:
    """`pending` until the worker has applied a first chunk; another user's import is 404."""
    job = await services.reads.find(token, lambda session: _get_job(session, import_id))
    if job is None:
        return ImportRead(import_id=import_id, state=ImportState.PENDING)
    if job.owner_id != user.id:
        raise Problem(404, "no such import")
    return ImportRead(
        import_id=job.id,
        state=ImportState(job.state),
        total_chunks=job.total_chunks,
        chunks_done=job.chunks_done,
        applied=job.applied,
        rejected=job.rejected,
        errors=[RowError.model_validate(error) for error in job.errors],
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
