"""Events stay in commit order when a COMMIT's acknowledgement is lost: the worker's retry finds its
commands already applied, and their events still go out, before anything newer."""

import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests import settings as test_settings
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.events import tap_events
from tests.support.polling import eventually
from tests.support.processes import Worker
from tests.support.proxy import LosesCommitAcks


@pytest.fixture
def worker_behind_proxy(worker: Worker) -> Iterator[LosesCommitAcks]:
    """The test stack's worker, replaced for this test by one that reaches PostgreSQL through the proxy."""
    worker.stop()
    with LosesCommitAcks(test_settings.PRIMARY_PORT) as proxy:
        url = test_settings.WORKER_DATABASE_URL.replace(f":{test_settings.PRIMARY_PORT}/", f":{proxy.port}/")
        # In plain text, so the proxy can see the COMMIT: asyncpg would otherwise ask for TLS, and Debian's
        # PostgreSQL (ssl = on) would grant it.
        with Worker(env={"DATABASE_URL": url, "DATABASE_SSLMODE": "disable"}, name="worker-commit-ack"):
            yield proxy
    worker.start()


def _creates(owner: int, titles: list[str]) -> list[tuple[str, object]]:
    body = lambda title: {"owner_id": owner, "title": title}  # noqa: E731
    return [("item.create", command_message(body(t), actor=f"user:{owner}", owner=str(owner))) for t in titles]


async def test_a_lost_commit_acknowledgement_keeps_every_event_in_order(
    http: httpx.AsyncClient, primary: asyncpg.Connection, worker_behind_proxy: LosesCommitAcks
) -> None:
    owner = await sign_up(http)
    run = uuid.uuid4().hex[:8]
    before = [f"{run} before {n}" for n in range(5)]
    after = [f"{run} after {n}" for n in range(5)]
    async with tap_events() as tap:
        worker_behind_proxy.arm()
        await publish(_creates(owner.id, before))  # type: ignore[arg-type]
        await eventually(lambda: _acks_lost(worker_behind_proxy), lambda lost: lost == 1)
        await publish(_creates(owner.id, after))  # type: ignore[arg-type]
        events = await eventually(
            tap.drain, lambda seen: {e["data"].get("title") for e in seen} >= {*before, *after}, deadline_s=30
        )
    titles = [e["data"]["title"] for e in events if e["name"] == "item.created" and e["data"]["title"].startswith(run)]
    first_seen = list(dict.fromkeys(titles))  # at least once: a repeat is allowed, an overtaking is not
    assert first_seen == before + after
    rows = await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", owner.id)
    assert rows == 10  # the retry applied nothing twice


async def _acks_lost(proxy: LosesCommitAcks) -> int:
    return proxy.acks_lost
