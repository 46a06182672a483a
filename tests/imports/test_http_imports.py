"""Imports over HTTP: a streamed JSON Lines upload, its progress, and who may see it."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from shared.contracts.imports import MAX_COMMAND_BYTES
from tests.imports.support import finished_job, jsonl
from tests.support.api import Client, sign_up
from tests.support.polling import eventually
from tests.support.processes import Gateway
from tests.support.tap import tap_commands

NDJSON = {"Content-Type": "application/x-ndjson"}


def _lines(count: int) -> tuple[list[object], dict[int, str]]:
    """JSON Lines with a few kinds of bad line; returns the lines and {line number: reason prefix}."""
    lines: list[object] = [{"title": f"line {n}", "status": "in_progress"} for n in range(1, count + 1)]
    lines[4] = '{"title": "broken'
    lines[9] = {"title": "extra", "owner_id": 1}
    lines[1499] = {"title": "x" * 101}
    lines[2000] = ["not", "an", "object"]
    lines[2400] = {"title": "ok", "status": "done"}
    lines[2401] = ""  # blank lines are skipped, their number still counts
    lines[2100] = '{"title": ' + "[" * 5_000 + "]" * 5_000 + "}"  # nested far deeper than a parser goes
    lines[2200] = {"title": {"nested": "object"}}
    lines[2300] = '{"title": "a\\ud800b"}'  # a lone surrogate, which no UTF-8 text holds
    lines[2350] = {"title": "n\u0000ul"}
    bad = {
        5: "not valid JSON",
        10: "unknown field(s): owner_id",
        1500: "title",
        2001: "not a JSON object",
        2101: "not valid JSON: nested too deeply",
        2201: "title: must be text",
        2301: "text must be valid Unicode",
        2351: "",
        2401: "status",
    }
    return lines, bad


async def _in_pieces(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


async def _held(data: bytes, started: asyncio.Event, release: asyncio.Event) -> AsyncIterator[bytes]:
    """An upload that sends its first piece, then waits for `release`: under way for as long as the
    test says, however loaded the machine."""
    yield data[:1024]
    started.set()
    await release.wait()
    async for piece in _in_pieces(data[1024:]):
        yield piece


async def test_a_streamed_json_lines_upload_is_imported(http: httpx.AsyncClient, primary: asyncpg.Connection) -> None:
    owner = await sign_up(http)
    lines, bad = _lines(2_500)
    response = await http.post(
        "/api/v1/imports", content=_in_pieces(jsonl(lines)), headers={**owner.headers, **NDJSON}
    )  # chunked transfer: no Content-Length, the gateway streams it to disk
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["rows"], accepted["chunks"], accepted["state"]) == (2_499, 3, "pending")
    assert response.headers["Location"] == f"/api/v1/imports/{accepted['import_id']}"

    await finished_job(primary, uuid.UUID(accepted["import_id"]))
    status = await eventually(
        lambda: http.get(response.headers["Location"], headers=owner.headers),
        lambda r: r.status_code == 200 and r.json()["state"] == "completed",
    )
    shown = status.json()
    assert (shown["applied"], shown["rejected"], shown["chunks_done"], shown["total_chunks"]) == (2_490, 9, 3, 3)
    assert [e["row"] for e in shown["errors"]] == sorted(bad)
    for error in shown["errors"]:
        assert error["error"].startswith(bad[error["row"]]), error
    # without a consistency token the listing is read on the replica, which may not have replayed the
    # last chunk yet (the job above may have come from the primary, where a read finds what the replica lacks)
    listed = await eventually(
        lambda: http.get("/api/v1/items?limit=1", headers=owner.headers), lambda r: r.json()["count"] == 2_490
    )
    assert listed.json()["count"] == 2_490


async def test_chunks_stay_within_a_mebibyte_and_uploads_per_caller_are_bounded(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    lines = [{"title": f"long {n}", "description": "d" * 9_000} for n in range(400)]  # 3.6 MB in 400 rows
    async with tap_commands() as tap:
        response = await http.post("/api/v1/imports", content=jsonl(lines), headers={**owner.headers, **NDJSON})
        assert response.status_code == 202, response.text
        assert response.json()["chunks"] == 4  # by bytes, not by rows (1,000)
        chunks = await tap.drain()
    assert [len(chunk.body) <= MAX_COMMAND_BYTES for chunk in chunks] == [True] * 4
    await finished_job(primary, uuid.UUID(response.json()["import_id"]))

    release, started = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
    held = [
        asyncio.create_task(
            http.post("/api/v1/imports", content=_held(jsonl([{"title": "held"}] * 2_000), event, release),
                      headers={**owner.headers, **NDJSON})
        )
        for event in started
    ]  # fmt: skip
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 20)
        # MAX_UPLOADS_PER_CALLER (2) are under way: a third is refused (polled: the two may not have
        # reached the gateway's route yet, and a third accepted meanwhile ends at once).
        third = await eventually(
            lambda: http.post(
                "/api/v1/imports", content=jsonl([{"title": "third"}]), headers={**owner.headers, **NDJSON}
            ),
            lambda answer: answer.status_code == 429,
        )
        assert third.headers["Retry-After"]
    finally:
        release.set()
    assert [(await upload).status_code for upload in held] == [202, 202]


async def test_another_users_import_is_404(http: httpx.AsyncClient, primary: asyncpg.Connection) -> None:
    alice, bob = await sign_up(http), await sign_up(http)
    response = await http.post(
        "/api/v1/imports", content=jsonl([{"title": "mine"}]), headers={**alice.headers, **NDJSON}
    )
    assert response.status_code == 202
    await finished_job(primary, uuid.UUID(response.json()["import_id"]))
    location = response.headers["Location"]
    assert (await http.get(location, headers=alice.headers)).json()["applied"] == 1
    foreign = await http.get(location, headers=bob.headers)
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    unknown = await http.get(f"/api/v1/imports/{uuid.uuid4()}", headers=alice.headers)
    assert unknown.json()["state"] == "pending"  # like a command: nothing applied yet (or never sent)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "reason"),
    [
        ("application/json", b'{"title": "x"}', 415, "text/csv"),
        ("text/csv", b"name,colour\nx,red\n", 422, "header"),
        ("text/csv", b"title\n", 422, "no rows"),
        ("application/x-ndjson", b"\xff\xfe not utf-8\n", 422, "unreadable"),
    ],
)
async def test_an_unusable_upload_is_refused_and_nothing_is_published(
    http: httpx.AsyncClient, content_type: str, body: bytes, status: int, reason: str
) -> None:
    owner = await sign_up(http)
    async with tap_commands() as tap:
        response = await http.post(
            "/api/v1/imports", content=body, headers={**owner.headers, "Content-Type": content_type}
        )
        assert response.status_code == status, response.text
        assert reason in response.json()["detail"]
        assert await tap.count() == 0


async def test_an_upload_past_its_own_cap_is_413_and_nothing_is_published(http: httpx.AsyncClient) -> None:
    owner: Client = await sign_up(http)
    small = Gateway(env={"MAX_IMPORT_BYTES": "2048"})
    await asyncio.to_thread(small.start)
    try:
        async with httpx.AsyncClient(base_url=small.url, timeout=30) as client, tap_commands() as tap:
            headers = {**owner.headers, **NDJSON}
            big = jsonl([{"title": f"t{n}"} for n in range(500)])
            declared = await client.post("/api/v1/imports", content=big, headers=headers)
            assert declared.status_code == 413
            # Chunked, no Content-Length: refused while it streams. The gateway answers before the
            # body ends and closes the connection, so a client still sending may only see the close.
            try:
                streamed = await client.post("/api/v1/imports", content=_in_pieces(big, 1024), headers=headers)
                assert streamed.status_code == 413
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                pass
            assert await tap.count() == 0
            fits = jsonl([{"title": f"t{n}"} for n in range(100)])
            assert len(fits) < 2048
            async with httpx.AsyncClient(base_url=small.url, timeout=30) as fresh:  # the old connection was closed
                accepted = await fresh.post("/api/v1/imports", content=_in_pieces(fits, 512), headers=headers)
            assert accepted.status_code == 202
            assert await tap.count() == 1
    finally:
        await asyncio.to_thread(small.stop)
