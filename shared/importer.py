"""The import splitter: stream a CSV or JSON Lines file into `item.import` chunks on the bus.

Used by the CLI and by the HTTP upload (which spools the request body to a file first). A file is
read twice, streaming both times: once to count its rows and chunks (every chunk carries the total),
once to publish. A chunk holds at most MAX_CHUNK_ROWS rows and MAX_CHUNK_BYTES of JSON; a row that
could not fit (over MAX_ROW_BYTES), or whose fields are not text (a nested array or object), travels
as an `invalid` row with its reason. Chunks are published through the caller's Publisher,
persistent and mandatory, with up to `in_flight` confirms pending.
"""

import asyncio
import csv
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from shared.contracts.commands import CommandName
from shared.contracts.headers import Actor
from shared.contracts.imports import MAX_CHUNK_BYTES, MAX_CHUNK_ROWS, MAX_ROW_BYTES, ROW_FIELDS
from shared.contracts.messages import command_message
from shared.publishing import NotConfirmed, Publisher
from shared.retry import backoff
from shared.topology import COMMANDS_EXCHANGE_NAME

CSV_TYPE = "text/csv"
JSONL_TYPE = "application/x-ndjson"


class ImportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


CONTENT_TYPES = {CSV_TYPE: ImportFormat.CSV, JSONL_TYPE: ImportFormat.JSONL}
SUFFIXES = {".csv": ImportFormat.CSV, ".jsonl": ImportFormat.JSONL, ".ndjson": ImportFormat.JSONL}


class SourceError(ValueError):
    """The file as a whole cannot be imported (bad CSV header, not UTF-8, no rows)."""


@dataclass(frozen=True)
class Published:
    import_id: uuid.UUID
    rows: int
    chunks: int


def format_of(path: Path) -> ImportFormat:
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise SourceError(f"unknown file type {path.suffix!r}: use .csv, .jsonl or .ndjson") from None


def _csv_rows(source: TextIO) -> Iterator[dict[str, Any]]:
    """Rows numbered as a spreadsheet shows them: the header is row 1."""
    reader = csv.DictReader(source)
    header = reader.fieldnames or []
    if "title" not in header or not set(header) <= set(ROW_FIELDS) or len(set(header)) != len(header):
        raise SourceError(f"the CSV header must name title and optionally description, status; got {header}")
    for number, record in enumerate(reader, start=2):
        if None in record:
            yield {"row": number, "invalid": "more fields than the header names"}
            continue
        row: dict[str, Any] = {"row": number, "title": record["title"]}
        for name in ("description", "status"):
            if record.get(name):  # an empty cell is an absent field
                row[name] = record[name]
        yield row


def _jsonl_row(number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except RecursionError:
        return {"row": number, "invalid": "not valid JSON: nested too deeply"}
    except ValueError as error:
        return {"row": number, "invalid": f"not valid JSON: {error}"[:500]}
    if not isinstance(value, dict):
        return {"row": number, "invalid": "not a JSON object"}
    unknown = sorted(set(value) - set(ROW_FIELDS))
    if unknown:
        return {"row": number, "invalid": f"unknown field(s): {', '.join(unknown)}"[:500]}
    nested = [name for name, field in value.items() if isinstance(field, dict | list)]
    if nested:
        return {"row": number, "invalid": f"{nested[0]}: must be text, not a JSON {type(value[nested[0]]).__name__}"}
    return {"row": number, **value}


def _encoded(row: dict[str, Any]) -> bytes:
    """A row as it travels in a chunk; one too large to travel becomes an invalid row."""
    try:
        encoded = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # JSON may escape a lone surrogate, which no UTF-8 text holds
        return json.dumps({"row": row["row"], "invalid": "text must be valid Unicode (a lone surrogate)"}).encode()
    if len(encoded) <= MAX_ROW_BYTES:
        return encoded
    return json.dumps({"row": row["row"], "invalid": f"the row is larger than {MAX_ROW_BYTES} bytes"}).encode()


def _jsonl_rows(source: TextIO) -> Iterator[dict[str, Any]]:
    """Rows numbered by line; blank lines are skipped."""
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield _jsonl_row(number, line)


def read_rows(path: Path, fmt: ImportFormat) -> Iterator[dict[str, Any]]:
    """The rows of the file, one at a time, each with its row number."""
    try:
        with path.open(encoding="utf-8-sig", newline="" if fmt == ImportFormat.CSV else None) as source:
            yield from (_csv_rows if fmt == ImportFormat.CSV else _jsonl_rows)(source)
    except (UnicodeDecodeError, csv.Error) as error:
        raise SourceError(f"unreadable {fmt.value} file: {error}") from None


def _chunks(path: Path, fmt: ImportFormat) -> Iterator[list[bytes]]:
    """The encoded rows of each chunk, in order: at most MAX_CHUNK_ROWS rows, MAX_CHUNK_BYTES of rows."""
    rows: list[bytes] = []
    size = 0
    for row in read_rows(path, fmt):
        encoded = _encoded(row)
        if rows and (len(rows) == MAX_CHUNK_ROWS or size + len(encoded) + 1 > MAX_CHUNK_BYTES):
            yield rows
            rows, size = [], 0
        rows.append(encoded)
        size += len(encoded) + 1
    if rows:
        yield rows


def count(path: Path, fmt: ImportFormat) -> tuple[int, int]:
    """How many rows and chunks the file makes (reads it through, checking the header and the encoding)."""
    rows = chunks = 0
    for chunk in _chunks(path, fmt):
        rows, chunks = rows + len(chunk), chunks + 1
    if rows == 0:
        raise SourceError("the file has no rows")
    return rows, chunks


def chunk_bodies(
    path: Path, fmt: ImportFormat, *, import_id: uuid.UUID, owner_id: int, total: int
) -> Iterator[tuple[int, bytes]]:
    """(rows in chunk, JSON body) for each chunk, in order."""
    for seq, rows in enumerate(_chunks(path, fmt)):
        head = json.dumps({"import_id": str(import_id), "seq": seq, "total": total, "owner_id": owner_id})
        yield len(rows), head[:-1].encode() + b',"rows":[' + b",".join(rows) + b"]}"


async def publish_import(
    publisher: Publisher,
    path: Path,
    fmt: ImportFormat,
    *,
    owner_id: int,
    import_id: uuid.UUID | None = None,
    in_flight: int = 100,
    timeout_s: float = 30.0,
    retry_s: float = 0.0,
    on_progress: Callable[[int], None] | None = None,
) -> Published:
    """Count, split and publish the file acting as user `owner_id`; return once every chunk is confirmed.

    A chunk the broker did not confirm is sent again, under the same command id, for up to `retry_s`
    (the publisher meanwhile moves to the next broker of its list): the inbox, and the claim of
    (import, owner, seq), apply it once. A chunk sent again may be applied after later ones.
    Raises SourceError for a file that cannot be imported as a whole, NotConfirmed if the broker did
    not confirm every chunk within that (some may be applied).
    """
    import_id = import_id or uuid.uuid4()
    rows, total = await asyncio.to_thread(count, path, fmt)
    bodies = chunk_bodies(path, fmt, import_id=import_id, owner_id=owner_id, total=total)

    async def send(count: int, body: bytes) -> int:
        command_id = uuid.uuid4()  # a fresh command id per chunk: the inbox deduplicates redeliveries
        until = asyncio.get_running_loop().time() + retry_s
        for pause in backoff(first_s=0.1, cap_s=2.0):
            message = command_message(
                body, command_id=command_id, owner_key=str(owner_id), user_id=publisher.user_id,
                actor=str(Actor.user(owner_id)),
            )  # fmt: skip
            try:
                await publisher.publish(
                    message, exchange=COMMANDS_EXCHANGE_NAME, routing_key=CommandName.ITEM_IMPORT.value,
                    timeout_s=timeout_s,
                )  # fmt: skip
                return count
            except NotConfirmed:
                if asyncio.get_running_loop().time() + pause > until:
                    raise
            await asyncio.sleep(pause)  # the retry's pace, while the publisher reconnects
        raise AssertionError("unreachable")

    await publisher.exchange(COMMANDS_EXCHANGE_NAME)  # looked up before the first send: chunks leave in order
    pending: set[asyncio.Task[int]] = set()
    while (item := await asyncio.to_thread(next, bodies, None)) is not None:
        if len(pending) >= in_flight:
            pending = await _settle(pending, asyncio.FIRST_COMPLETED, on_progress)
        pending.add(asyncio.create_task(send(*item)))
    await _settle(pending, asyncio.ALL_COMPLETED, on_progress)
    return Published(import_id=import_id, rows=rows, chunks=total)


async def _settle(
    pending: set[asyncio.Task[int]], when: str, on_progress: Callable[[int], None] | None
) -> set[asyncio.Task[int]]:
    if not pending:
        return pending
    done, still = await asyncio.wait(pending, return_when=when)
    for task in done:
        if task.exception() is not None:
            for other in still:
                other.cancel()
        count = task.result()  # raises the first failure
        if on_progress:
            on_progress(count)
    return still
