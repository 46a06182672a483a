"""The worker dies (kill -9, SIGTERM, a crash between commit and ack): nothing lost, nothing twice."""

import asyncio
import json
import sys
import time
import uuid
from collections import Counter

import asyncpg
import httpx

from tests.support.api import Client, create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.crashing_worker import EXIT_CODE
from tests.support.events import tap_events
from tests.support.load import Ledger, post_items, rows_by_title
from tests.support.polling import eventually
from tests.support.processes import Worker

CREATES = 20_000


async def test_kill_9_the_worker_mid_stream_of_20000_creates(
    http: httpx.AsyncClient, worker: Worker, primary: asyncpg.Connection
) -> None:
    client = await sign_up(http)
    titles = [f"k9-{n}" for n in range(CREATES)]
    killed_at: list[int] = []

    def kill_once(ledger) -> None:  # type: ignore[no-untyped-def]
        if not killed_at and len(ledger.titles(202)) >= 5_000:
            killed_at.append(len(ledger.status))
            worker.kill()

    async with _with_idempotency_keys(http) as keyed:
        started = time.monotonic()
        ledger = await post_items(keyed, client, titles, concurrency=32, on_progress=kill_once)
        accepted_s = time.monotonic() - started
        worker.start()
        first_answers = ledger.counts()
        # A 503 (or no answer) under this load is a correct answer: the command may still be applied, at
        # most once. A client retries it with its Idempotency-Key until the gateway takes it.
        await eventually(lambda: _retry_the_unaccepted(keyed, client, ledger), lambda left: not left, 120)
    rows = await eventually(lambda: rows_by_title(primary, client.id), lambda r: sum(r.values()) >= CREATES, 120)
    print(f"\nkill -9 after {killed_at[0]} requests; {accepted_s:.1f}s to accept; first answers: {first_answers}")
    assert killed_at
    assert rows == Counter(titles)  # every create applied exactly once, retried or not


def _with_idempotency_keys(http: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client like `http` whose every POST carries an Idempotency-Key made of the item's title."""

    async def add_key(request: httpx.Request) -> None:
        request.headers["Idempotency-Key"] = f"k9-{json.loads(request.content)['title']}"

    return httpx.AsyncClient(base_url=http.base_url, timeout=30, event_hooks={"request": [add_key]})


async def _retry_the_unaccepted(keyed: httpx.AsyncClient, client: Client, ledger: Ledger) -> set[str]:
    """POST again each create not answered 202 or 201 (the retry of an applied one answers its outcome)."""
    for title in sorted(title for title, status in ledger.status.items() if status not in (201, 202)):
        try:
            response = await keyed.post("/api/v1/items", json={"title": title}, headers=client.headers)
            ledger.status[title] = response.status_code
        except httpx.HTTPError:
            ledger.status[title] = 0
    return {title for title, status in ledger.status.items() if status not in (201, 202)}


async def test_sigterm_finishes_in_flight_work_and_loses_nothing(
    http: httpx.AsyncClient, worker: Worker, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    messages = [
        (
            "item.create",
            command_message({"owner_id": owner.id, "title": f"t-{n}"}, actor=f"user:{owner.id}", owner=str(owner.id)),
        )
        for n in range(3_000)
    ]
    publishing = asyncio.create_task(publish(messages))
    await eventually(lambda: rows_by_title(primary, owner.id), lambda r: sum(r.values()) >= 500)
    assert worker.stop() == 0  # a clean exit, after the batch in hand
    await publishing
    worker.start()
    rows = await eventually(lambda: rows_by_title(primary, owner.id), lambda r: sum(r.values()) >= 3_000)
    assert len(rows) == 3_000
    assert max(rows.values()) == 1


async def test_a_crash_between_commit_and_ack_has_no_double_effect_and_loses_no_event(
    http: httpx.AsyncClient, worker: Worker, primary: asyncpg.Connection
) -> None:
    client: Client = await sign_up(http)
    marker = f"crash-{uuid.uuid4().hex}"
    worker.stop()
    crashing = CrashingWorker(env={"CRASH_AFTER_COMMIT_MARKER": marker})
    crashing.start()
    try:
        async with tap_events() as tap:
            response = await http.post("/api/v1/items", json={"title": marker}, headers=client.headers)
            assert response.status_code == 202
            await eventually(lambda: _exited(crashing), lambda code: code == EXIT_CODE)
            assert await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", marker) == 1  # committed
            worker.start()  # redelivered (never acked): deduplicated; the outbox is relayed
            events = await eventually(
                tap.drain, lambda e: any(x["data"].get("title") == marker for x in e), deadline_s=30
            )
            await create_item(http, client, title="after the crash")
    finally:
        crashing.stop()
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", marker) == 1
    command_id = uuid.UUID(response.json()["command_id"])
    assert await primary.fetchval("SELECT count(*) FROM command WHERE command_id = $1", command_id) == 1
    assert [e["command_id"] for e in events if e["data"].get("title") == marker] == [str(command_id)]


async def _exited(worker: Worker) -> int | None:
    assert worker.process is not None
    return worker.process.poll()


class CrashingWorker(Worker):
    """The worker of tests/support/crashing_worker.py."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.support.crashing_worker"]
