"""examples/publisher.py and examples/follower.py, run as a third-party service would: its own bus
users (a granted publisher, an event reader), against the real services."""

import asyncio
import csv
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from cli.bus import reader_user, service_user
from shared.settings import ServiceGrant
from tests import settings as test_settings
from tests.ops.cli import ROOT
from tests.security.helpers import BusLogin, provision
from tests.support.processes import Gateway, Worker

pytestmark = pytest.mark.rabbit
OWNER = test_settings.EXAMPLE_OWNER
ROWS, BAD, LONG = 1_500, 6, 300  # rows of the CSV; of them bad (no title), and with an 8,000-character description


def url_of(login: BusLogin) -> str:
    return f"amqp://{quote(login.name, safe='')}:{quote(login.password, safe='')}@127.0.0.1:5672/{test_settings.VHOST}"


def write_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["title", "description", "status"])
        for i in range(ROWS):
            title = "" if i % (ROWS // BAD) == 17 else f"example {i}"
            description = "d" * 8_000 if i % (ROWS // LONG) == 0 else ("" if i % 2 else f"row {i}")
            writer.writerow([title, description, ("pending", "completed", "")[i % 3]])


async def example(script: str, login: BusLogin, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, f"examples/{script}", *args, cwd=ROOT, env={**os.environ, "RABBIT_URL": url_of(login)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def last_json(process: asyncio.subprocess.Process) -> dict[str, Any]:
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, (out + err).decode()[-3000:]
    return dict(json.loads(out.decode().splitlines()[-1]))


async def test_a_third_party_service_publishes_imports_and_follows_the_events(
    stack: tuple[Worker, Gateway], primary: asyncpg.Connection, tmp_path: Path
) -> None:
    await primary.execute(
        """INSERT INTO "user" (id, email, hashed_password, full_name) VALUES ($1, $2, 'x', 'Example owner')
           ON CONFLICT (id) DO NOTHING""",
        OWNER, f"owner-{OWNER}@example.org",
    )  # fmt: skip
    grant = ServiceGrant.model_validate(test_settings.SERVICE_GRANTS[test_settings.SERVICE_EXAMPLE])
    publisher = provision(service_user(test_settings.SERVICE_EXAMPLE, grant))
    reader = provision(reader_user(f"{test_settings.SERVICE_EXAMPLE}-events"))
    write_csv(tmp_path / "items.csv")
    expected_items = 1 + ROWS - BAD

    before = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()  # the log's timestamps count to the second
    follower = await example("follower.py", reader, "--from", before, "--owner-id", str(OWNER),
                             "--items", str(expected_items), "--timeout", "80")  # fmt: skip
    assert follower.stdout is not None
    assert (await asyncio.wait_for(follower.stdout.readline(), 30)).startswith(b"reading from ")
    published = await example("publisher.py", publisher, "--owner-id", str(OWNER), "--title", "one by one",
                              "--csv", str(tmp_path / "items.csv"))  # fmt: skip
    summary = (await last_json(published))["summary"]
    mirror = (await last_json(follower))["items"]

    item = summary["item"]
    assert (item["status"], item["code"]) == ("applied", "created")
    chunks = summary["chunks"]
    assert all(chunk["rows"] <= 1_000 and chunk["bytes"] <= 2**20 for chunk in chunks)
    assert len(chunks) >= 3  # the long descriptions split it by bytes, not only by rows
    assert summary["chunk_outcomes"] == len(chunks)  # one outcome per chunk, on the service's reply queue
    final = summary["completed"]
    assert (final["chunks_done"], final["total_chunks"]) == (len(chunks), len(chunks))
    assert (final["import_applied"], final["import_rejected"]) == (ROWS - BAD, BAD)

    rows = await primary.fetch("SELECT id, owner_id, title, description, status FROM item WHERE owner_id = $1", OWNER)
    assert len(rows) == expected_items
    assert mirror == {str(r["id"]): {k: r[k] for k in ("owner_id", "title", "description", "status")} for r in rows}
    actors = await primary.fetch(
        "SELECT DISTINCT actor FROM command WHERE (name = 'item.create' AND changes->>'owner_id' = $1)"
        " OR changes->>'import_id' = $2",
        str(OWNER), summary["import_id"],
    )  # fmt: skip
    assert {record["actor"] for record in actors} == {f"service:{publisher.name}"}
