"""Imports through the bus: a large CSV with bad rows, a broker dying midway, a redelivered or republished
chunk, foreign chunks."""

import json
import uuid
from pathlib import Path

import aio_pika
import asyncpg
import httpx

from shared.importer import ImportFormat, publish_import
from shared.publishing import Publisher
from tests import settings as test_settings
from tests.imports.support import errors_of, finished_job, write_csv
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.proxy import TcpProxy


async def test_a_100k_row_csv_applies_every_good_row_and_rejects_exactly_the_bad_ones(
    http: httpx.AsyncClient, primary: asyncpg.Connection, tmp_path: Path
) -> None:
    owner = await sign_up(http)
    good, bad = write_csv(tmp_path / "items.csv", 100_000)
    assert len(bad) == 1_000

    publisher = Publisher(test_settings.RABBIT_URL, "test-import")
    try:
        published = await publish_import(publisher, tmp_path / "items.csv", ImportFormat.CSV, owner_id=owner.id)
    finally:
        await publisher.close()
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


async def test_an_import_whose_broker_dies_midway_goes_on_at_the_next_and_applies_each_row_once(
    http: httpx.AsyncClient, primary: asyncpg.Connection, tmp_path: Path
) -> None:
    """Two proxies to the broker stand for two nodes; the first is cut once three chunks are confirmed,
    with more in flight: those are sent again through the second, and every row is applied once."""
    owner = await sign_up(http)
    good, bad = write_csv(tmp_path / "items.csv", 10_000)
    port = test_settings.RABBIT_PORTS[0]
    with TcpProxy(port) as first, TcpProxy(port) as second:
        urls = [test_settings.RABBIT_URL.replace(f":{port}/", f":{proxy.port}/") for proxy in (first, second)]
        publisher = Publisher(urls, "test-import-failover", timeout_s=5)
        confirmed = 0

        def progress(rows: int) -> None:
            nonlocal confirmed
            confirmed += 1
            if confirmed == 3:
                first.cut()  # its node dies with chunks in flight

        try:
            published = await publish_import(
                publisher, tmp_path / "items.csv", ImportFormat.CSV, owner_id=owner.id,
                in_flight=4, retry_s=30, on_progress=progress,
            )  # fmt: skip
        finally:
            await publisher.close()
        assert publisher.brokers.current == urls[1]
    job = await finished_job(primary, published.import_id)
    assert (job["applied"], job["rejected"], job["chunks_done"], job["total_chunks"]) == (9_900, 100, 10, 10)
    titles = await primary.fetch("SELECT title FROM item WHERE owner_id = $1", owner.id)
    assert len(titles) == len(good)  # none twice
    assert {record["title"] for record in titles} == good
    assert len(bad) == 100


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
    assert errors_of(job) == [{"row": 501, "error": "title: must not be blank, nor contain NUL (\\u0000)"}]
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


async def _outcomes(primary: asyncpg.Connection, *messages: aio_pika.Message) -> list[asyncpg.Record]:
    """The inbox rows of these commands, in order, once all exist."""
    ids = [uuid.UUID(message.message_id) for message in messages]  # type: ignore[arg-type]
    query = "SELECT command_id, status, code, detail, changes FROM command WHERE command_id = ANY($1)"
    rows = await eventually(lambda: primary.fetch(query, ids), lambda rows: len(rows) == len(ids))
    by_id = {row["command_id"]: row for row in rows}
    return [by_id[command_id] for command_id in ids]


async def test_a_chunk_republished_with_a_new_message_id_has_one_effect(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    import_id, actor = uuid.uuid4(), f"user:{owner.id}"
    first = _chunk(import_id, owner.id, [{"row": 1, "title": "again 1"}, {"row": 2, "title": "   "}], seq=0, total=2)
    second = _chunk(import_id, owner.id, [{"row": 3, "title": "again 3"}], seq=1, total=2)
    messages = [command_message(body, actor=actor, owner=str(owner.id)) for body in (first, first, second)]
    assert messages[0].message_id != messages[1].message_id  # a retried upload: same chunk, new message id
    await publish([("item.import", message) for message in messages])

    outcomes = await _outcomes(primary, *messages)
    job = await finished_job(primary, import_id)
    assert (job["chunks_done"], job["total_chunks"], job["applied"], job["rejected"]) == (2, 2, 2, 1)
    assert errors_of(job) == [{"row": 2, "error": "title: must not be blank, nor contain NUL (\\u0000)"}]
    titles = await primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY title", owner.id)
    assert [record["title"] for record in titles] == ["again 1", "again 3"]
    assert [(o["status"], o["code"]) for o in outcomes] == [("applied", "created")] * 3
    changes = [json.loads(o["changes"]) for o in outcomes]
    chunk_figures = ["import_id", "seq", "applied", "rejected", "duplicate", "chunks_done", "state"]
    assert [[c.get(key) for key in chunk_figures] for c in changes] == [
        [str(import_id), 0, 1, 1, None, 1, "running"],
        [str(import_id), 0, 0, 0, True, 1, "running"],
        [str(import_id), 1, 1, 0, None, 2, "completed"],
    ]
    assert [c["errors"] for c in changes] == [
        [{"row": 2, "error": "title: must not be blank, nor contain NUL (\\u0000)"}],
        [],
        [],
    ]
    assert "already applied" in outcomes[1]["detail"]


async def test_a_chunk_naming_another_owners_import_cannot_claim_its_seq(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    victim, intruder = await sign_up(http), await sign_up(http)
    import_id = uuid.uuid4()

    def message(owner_id: int, title: str, seq: int) -> aio_pika.Message:
        body = _chunk(import_id, owner_id, [{"row": 1, "title": title}], seq=seq, total=2)
        return command_message(body, actor=f"user:{owner_id}", owner=str(owner_id))

    opening = message(victim.id, "victim 0", 0)
    await publish([("item.import", opening)])
    await _outcomes(primary, opening)
    squatter = message(intruder.id, "intruder 1", 1)  # the intruder acts for itself, naming the victim's import
    await publish([("item.import", squatter)])
    await _outcomes(primary, squatter)
    closing = message(victim.id, "victim 1", 1)
    await publish([("item.import", closing)])

    [outcome] = await _outcomes(primary, closing)
    assert outcome["detail"] is None
    assert "duplicate" not in json.loads(outcome["changes"])
    job = await finished_job(primary, import_id)
    assert (job["owner_id"], job["chunks_done"], job["applied"], job["rejected"]) == (victim.id, 2, 2, 0)
    titles = await primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY title", victim.id)
    assert [record["title"] for record in titles] == ["victim 0", "victim 1"]
