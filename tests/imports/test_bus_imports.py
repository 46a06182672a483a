"""Imports through the bus: a large CSV with bad rows, a redelivered chunk, chunks of a foreign actor."""

import json
import uuid
from pathlib import Path

import asyncpg
import httpx

from shared.importer import ImportFormat, publish_import
from tests import settings as test_settings
from tests.imports.support import errors_of, finished_job, write_csv
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually


async def test_a_100k_row_csv_applies_every_good_row_and_rejects_exactly_the_bad_ones(
    http: httpx.AsyncClient, primary: asyncpg.Connection, tmp_path: Path
) -> None:
    owner = await sign_up(http)
    good, bad = write_csv(tmp_path / "items.csv", 100_000)
    assert len(bad) == 1_000

    published = await publish_import(
        test_settings.RABBIT_URL, tmp_path / "items.csv", ImportFormat.CSV, owner_id=owner.id
    )
    assert (published.rows, published.chunks) == (100_000, 100)
    job = await finished_job(primary, published.import_id)

    assert (job["applied"], job["rejected"], job["chunks_done"], job["total_chunks"]) == (99_000, 1_000, 100, 100)
    titles = await primary.fetch("SELECT title FROM item WHERE owner_id = $1", owner.id)
    assert len(titles) == 99_000  # no duplicates
    assert {record["title"] for record in titles} == good
    errors = errors_of(job)
    assert [(e["row"], e["error"].split(":")[0]) for e in errors] == bad[:100]  # the first 100, in order
    statuses = await primary.fetch("SELECT status, count(*) FROM item WHERE owner_id = $1 GROUP BY 1", owner.id)
    assert {record["status"] for record in statuses} == {"pending", "completed"}


def _chunk(import_id: uuid.UUID, owner_id: int, rows: list[dict[str, object]], seq: int = 0, total: int = 1) -> bytes:
    body = {"import_id": str(import_id), "seq": seq, "total": total, "owner_id": owner_id, "rows": rows}
    return json.dumps(body).encode()


async def test_a_chunk_published_twice_has_one_effect(http: httpx.AsyncClient, primary: asyncpg.Connection) -> None:
    owner = await sign_up(http)
    import_id = uuid.uuid4()
    rows = [{"row": n, "title": f"twice {n}"} for n in range(1, 501)] + [{"row": 501, "title": "   "}]
    message = command_message(_chunk(import_id, owner.id, rows), actor=f"user:{owner.id}", owner=str(owner.id))
    await publish([("item.import", message), ("item.import", message)])
    marker = command_message({"owner_id": owner.id, "title": "marker"}, actor=f"user:{owner.id}", owner=str(owner.id))
    await publish([("item.create", marker)])
    await eventually(
        lambda: primary.fetchval("SELECT count(*) FROM command WHERE command_id = $1", uuid.UUID(marker.message_id)),
        lambda n: n == 1,
    )
    job = await finished_job(primary, import_id)
    assert (job["applied"], job["rejected"], job["chunks_done"]) == (500, 1, 1)
    assert errors_of(job) == [{"row": 501, "error": "title: Value error, must not be blank"}]
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title LIKE 'twice %'") == 500


async def test_a_chunk_for_someone_else_is_rejected_and_touches_no_import(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    victim, intruder = await sign_up(http), await sign_up(http)
    import_id = uuid.uuid4()
    message = command_message(
        _chunk(import_id, victim.id, [{"row": 1, "title": "planted"}]),
        actor=f"user:{intruder.id}",
        owner=str(victim.id),
    )
    await publish([("item.import", message)])
    command_id = uuid.UUID(message.message_id)
    outcome = await eventually(
        lambda: primary.fetchrow("SELECT status, code FROM command WHERE command_id = $1", command_id),
        lambda row: row is not None,
    )
    assert (outcome["status"], outcome["code"]) == ("rejected", "not_found")
    assert await primary.fetchval("SELECT count(*) FROM import_job WHERE id = $1", import_id) == 0
    assert await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", victim.id) == 0
