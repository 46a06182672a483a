"""The import splitter: stream a CSV or JSON Lines file into `item.import` chunks on the bus.

Used by the CLI and by the HTTP upload (which spools the request body to a file first). A file is
read twice, streaming both times: once to count its rows (every chunk carries the total), once to
publish. Chunks are published persistent and mandatory, with up to `in_flight` confirms pending.
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
from urllib.parse import unquote, urlparse

import aio_pika

from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.imports import MAX_CHUNK_ROWS, ROW_FIELDS
from shared.topology import COMMANDS_EXCHANGE_NAME, HEADER_ACTOR, HEADER_OWNER, HEADER_SCHEMA_VERSION

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
    except ValueError as error:
        return {"row": number, "invalid": f"not valid JSON: {error}"[:500]}
    if not isinstance(value, dict):
        return {"row": number, "invalid": "not a JSON object"}
    unknown = sorted(set(value) - set(ROW_FIELDS))
    if unknown:
        return {"row": number, "invalid": f"unknown field(s): {', '.join(unknown)}"[:500]}
    return {"row": number, **value}


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


def count_rows(path: Path, fmt: ImportFormat) -> int:
    """How many rows the file has (reads it through, checking the header and the encoding)."""
    rows = sum(1 for _ in read_rows(path, fmt))
    if rows == 0:
        raise SourceError("the file has no rows")
    return rows


def chunk_bodies(
    path: Path, fmt: ImportFormat, *, import_id: uuid.UUID, owner_id: int, total: int, size: int = MAX_CHUNK_ROWS
) -> Iterator[tuple[int, bytes]]:
    """(rows in chunk, JSON body) for each chunk, in order."""
    rows: list[dict[str, Any]] = []
    seq = 0
    for row in read_rows(path, fmt):
        rows.append(row)
        if len(rows) == size:
            yield len(rows), _body(import_id, seq, total, owner_id, rows)
            rows, seq = [], seq + 1
    if rows:
        yield len(rows), _body(import_id, seq, total, owner_id, rows)


def _body(import_id: uuid.UUID, seq: int, total: int, owner_id: int, rows: list[dict[str, Any]]) -> bytes:
    chunk = {"import_id": str(import_id), "seq": seq, "total": total, "owner_id": owner_id, "rows": rows}
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode()


def bus_user(rabbit_url: str) -> str:
    """Our RabbitMQ user: sent as the validated user-id property, as the gateway does."""
    return unquote(urlparse(rabbit_url).username or "guest")


def chunk_message(body: bytes, *, owner_id: int, user_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        message_id=str(uuid.uuid4()),  # a fresh command id per chunk: the inbox deduplicates redeliveries
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=user_id,
        headers={
            HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION),
            HEADER_ACTOR: f"user:{owner_id}",
            HEADER_OWNER: str(owner_id),
        },
    )


async def publish_import(
    rabbit_url: str,
    path: Path,
    fmt: ImportFormat,
    *,
    owner_id: int,
    import_id: uuid.UUID | None = None,
    in_flight: int = 100,
    timeout_s: float = 30.0,
    on_progress: Callable[[int], None] | None = None,
) -> Published:
    """Count, split and publish the file acting as user `owner_id`; return once every chunk is confirmed."""
    import_id = import_id or uuid.uuid4()
    rows = await asyncio.to_thread(count_rows, path, fmt)
    total = -(-rows // MAX_CHUNK_ROWS)
    bodies = chunk_bodies(path, fmt, import_id=import_id, owner_id=owner_id, total=total)
    user_id = bus_user(rabbit_url)
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)

        async def send(count: int, body: bytes) -> int:
            message = chunk_message(body, owner_id=owner_id, user_id=user_id)
            await exchange.publish(message, CommandName.ITEM_IMPORT.value, mandatory=True, timeout=timeout_s)
            return count

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
