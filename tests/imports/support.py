"""Helpers for import tests: source files with known bad rows, and waiting for an import to finish."""

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.polling import eventually


def write_csv(path: Path, rows: int, bad_every: int = 100) -> tuple[set[str], list[tuple[int, str]]]:
    """A CSV whose row i (spreadsheet row i + 2) is bad when i % bad_every == 37.

    Bad rows alternate: an empty title, then a status that does not exist. Returns the titles that
    must be applied and the (row number, field) of every bad row, in order.
    """
    good: set[str] = set()
    bad: list[tuple[int, str]] = []
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["title", "description", "status"])
        for i in range(rows):
            title, status = f"item {i}", ("pending", "completed", "")[i % 3]
            if i % bad_every == 37:
                if len(bad) % 2 == 0:
                    title, field = "", "title"
                else:
                    status, field = "done", "status"
                bad.append((i + 2, field))
            else:
                good.add(title)
            writer.writerow([title, f"row {i}, with a comma" if i % 2 else "", status])
    return good, bad


def jsonl(lines: list[Any]) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


async def finished_job(primary: asyncpg.Connection, import_id: uuid.UUID, deadline_s: float = 180.0) -> asyncpg.Record:
    """The import job once every chunk has been applied."""
    return await eventually(
        lambda: primary.fetchrow("SELECT * FROM import_job WHERE id = $1", import_id),
        lambda job: job is not None and job["state"] == "completed",
        deadline_s,
    )


def errors_of(job: asyncpg.Record) -> list[dict[str, Any]]:
    errors = job["errors"]
    return list(json.loads(errors) if isinstance(errors, str) else errors)
