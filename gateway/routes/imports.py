"""Imports: upload a CSV or JSON Lines file (streamed to disk, split into chunks on the bus), follow it."""

import tempfile
import uuid
from itertools import permutations
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse

from gateway.http.problems import Problem
from gateway.http.schemas import ImportAccepted, ImportRead
from gateway.infrastructure import repository
from gateway.infrastructure.limits import get_limits
from gateway.routes.apidoc import header, link
from gateway.routes.deps import CurrentUser, ServicesDep, TokenDep
from shared.contracts.fields import SPACE
from shared.contracts.outcomes import RowError
from shared.importer import CONTENT_TYPES, CSV_TYPE, JSONL_TYPE, SourceError, publish_import
from shared.models import ImportState
from shared.publishing import NotConfirmed

router = APIRouter(prefix="/imports", tags=["imports"])
RETRY_AFTER_S = "2"


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


# What shared/importer.py reads as a file of rows (else 422): a CSV header naming title and
# optionally description and status, then a row; JSON Lines with a line that is not blank. A bad
# row is no 422 but a rejected row of the import. tests/unit/test_upload_patterns.py holds them to it.
_COLUMNS = ("title", "description", "status")
_CSV_HEADERS = "|".join(
    sorted(",".join(names) for n in (1, 2, 3) for names in permutations(_COLUMNS, n) if "title" in names)
)
UPLOAD_PATTERNS = {
    CSV_TYPE: rf"^\ufeff?({_CSV_HEADERS})\r?\n[\s\S]*[^\r\n][\s\S]*$",
    JSONL_TYPE: rf"^[\s\S]*[^{SPACE}\ufeff][\s\S]*$",
}
UPLOAD_EXAMPLES = {
    CSV_TYPE: "title,description,status\nBuy flour,2 kg,pending\nBake bread,,in_progress\n",
    JSONL_TYPE: '{"title": "Buy flour", "description": "2 kg"}\n{"title": "Bake bread"}\n',
}


@router.post(
    "",
    operation_id="imports-create",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportAccepted,
    responses={
        202: {
            "headers": {"Location": header("ImportLocation")},
            "links": {"progress": link("imports-read", import_id="$response.body#/import_id")},
        },
        415: {"description": "Neither text/csv nor application/x-ndjson"},
        422: {"description": "The file cannot be read as rows (the header, the encoding)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "pattern": UPLOAD_PATTERNS[t]}, "example": UPLOAD_EXAMPLES[t]}
                for t in CONTENT_TYPES
            },
        }
    },
)
async def upload(
    request: Request,
    user: CurrentUser,
    services: ServicesDep,
    content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
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


@router.get("/{import_id}", operation_id="imports-read", responses={404: {"description": "Another user's import"}})
async def read_import(import_id: uuid.UUID, user: CurrentUser, services: ServicesDep, token: TokenDep) -> ImportRead:
    """`pending` until the worker has applied a first chunk; another user's import is 404."""
    job = await services.reads.find(token, lambda conn: repository.get_import(conn, import_id))
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
