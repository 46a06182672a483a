"""The `item.import` chunk: up to 1,000 rows of one owner, part `seq` of `total` of one import."""

import uuid
from collections.abc import Sequence
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from shared.contracts.base import CommandBody
from shared.contracts.fields import Description, Status, Title, readable

MAX_CHUNK_ROWS = 1_000
MAX_CHUNK_BYTES = 2**20  # of rows: a chunk's message stays about 1 MiB
MAX_ROW_BYTES = 64 * 2**10  # far above any valid row (title 100, description 10,000 characters)
MAX_COMMAND_BYTES = MAX_CHUNK_BYTES + 64 * 2**10  # the largest body of any command (a chunk and its fields)


@with_config(ConfigDict(extra="forbid"))
class ImportRow(TypedDict):
    """One source row, as read: checked row by row by the worker, so a bad row sinks only itself.

    A plain dict on the wire and in memory (a model per row costs three times as much to decode).
    `invalid` is set by a splitter that could not read the source row (bad JSON, unknown field);
    the worker rejects such a row with that reason.
    """

    row: Annotated[int, Field(ge=1)]
    title: NotRequired[Any]
    description: NotRequired[Any]
    status: NotRequired[Any]
    invalid: NotRequired[Annotated[str, Field(max_length=500)]]


class ImportChunk(CommandBody):
    """Chunk `seq` (0-based) of `total` chunks of the import `import_id`."""

    import_id: uuid.UUID
    seq: int = Field(ge=0)
    total: int = Field(ge=1, le=10_000_000)
    owner_id: int = Field(ge=1, le=2**31 - 1)
    rows: list[ImportRow] = Field(max_length=MAX_CHUNK_ROWS)


@with_config(ConfigDict(extra="forbid"))
class ItemFields(TypedDict):
    """The rules of `CreateItem` for one imported row (the owner comes from the chunk)."""

    title: Title
    description: NotRequired[Description | None]
    status: NotRequired[Status]


ROW_FIELDS = ("title", "description", "status")
_ROWS = TypeAdapter(list[ItemFields])  # one call for a whole chunk: much cheaper than a model per row


def _fields(row: ImportRow) -> dict[str, Any]:
    return {name: row[name] for name in ROW_FIELDS if name in row}  # type: ignore[literal-required]


def _reasons(error: ValidationError) -> dict[int, str]:
    """Index in the validated list -> why that element is invalid."""
    reasons: dict[int, list[str]] = {}
    for e in error.errors():
        index, *loc = e["loc"]
        reasons.setdefault(int(index), []).append(f"{'.'.join(map(str, loc)) or 'row'}: {readable(e)}")
    return {index: "; ".join(messages) for index, messages in reasons.items()}


def check_rows(rows: Sequence[ImportRow]) -> tuple[list[ItemFields], list[tuple[int, str]]]:
    """The valid rows' fields, and (row number, reason) for each rejected row, in row order."""
    candidates = [row for row in rows if not row.get("invalid")]
    rejected = [(row["row"], row["invalid"]) for row in rows if row.get("invalid")]  # a list: row numbers may repeat
    values = [_fields(row) for row in candidates]
    try:
        valid = _ROWS.validate_python(values)
    except ValidationError as error:
        reasons = _reasons(error)
        rejected += [(candidates[index]["row"], reason) for index, reason in reasons.items()]
        valid = _ROWS.validate_python([value for index, value in enumerate(values) if index not in reasons])
    return valid, sorted(rejected, key=lambda rejection: rejection[0])
