"""A stop while the database is away: the batch in hand cannot commit, so after STOP_GRACE_S the
worker abandons it unacknowledged and exits; the next worker applies every command once."""

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from shared.topology import partition_queue_name
from tests import settings as test_settings
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Worker, queue_info
from tests.support.proxy import TcpProxy
from worker.consumer import STOP_GRACE_S

PARTITIONS = range(int(test_settings.ENV["COMMAND_PARTITIONS"]))
OWNERS = 12  # spread over the partitions: several of them hold a batch that cannot commit
STOP_DEADLINE_S = STOP_GRACE_S + 15  # the grace, once, and time to close


@pytest.fixture
def database_path(worker: Worker) -> Iterator[tuple[TcpProxy, Worker]]:
    """The test stack's worker, replaced for this test by one that reaches PostgreSQL through a proxy."""
    worker.stop()
    with TcpProxy(test_settings.PRIMARY_PORT) as proxy:
        url = test_settings.WORKER_DATABASE_URL.replace(f":{test_settings.PRIMARY_PORT}/", f":{proxy.port}/")
        proxied = Worker(env={"DATABASE_URL": url}, name="worker-stop-db-away")
        with proxied:
            yield proxy, proxied
    worker.start()


async def _held() -> dict[str, int]:
    """Deliveries a consumer holds unacknowledged in the partition queues, and on how many partitions."""
    infos = [queue_info(partition_queue_name(p)) for p in PARTITIONS]
    return {
        "unacknowledged": sum(info.get("messages_unacknowledged", 0) for info in infos),
        "partitions_holding": sum(1 for info in infos if info.get("messages_unacknowledged", 0)),
    }


async def test_a_stop_with_the_database_away_abandons_the_batch_and_the_next_worker_applies_it_once(
    http: httpx.AsyncClient, primary: asyncpg.Connection, database_path: tuple[TcpProxy, Worker]
) -> None:
    proxy, proxied = database_path
    owners = [await sign_up(http) for _ in range(OWNERS)]
    run = uuid.uuid4().hex[:8]
    messages = [
        (
            "item.create",
            command_message({"owner_id": o.id, "title": f"{run} {o.id}"}, actor=f"user:{o.id}", owner=str(o.id)),
        )
        for o in owners
    ]
    ids = [uuid.UUID(message.message_id) for _, message in messages if message.message_id]

    proxy.cut()
    await publish(messages)
    held = await eventually(_held, lambda q: q["unacknowledged"] == OWNERS)
    assert held["partitions_holding"] > 1  # batches in hand on several partitions, stopped together

    started = time.monotonic()
    assert proxied.process is not None
    proxied.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proxied.process.wait, STOP_DEADLINE_S)  # TimeoutExpired fails the test
    stopped_after = time.monotonic() - started
    proxied.process = None
    assert code == 0
    assert STOP_GRACE_S - 1 <= stopped_after <= STOP_DEADLINE_S  # it waited for the batch, then gave up
    # Nothing of them reached the database; had any been acknowledged, the next worker could not apply it.
    assert await primary.fetchval("SELECT count(*) FROM command WHERE command_id = ANY($1)", ids) == 0

    proxy.restore()
    proxied.start()
    rows = await eventually(
        lambda: primary.fetch("SELECT status FROM command WHERE command_id = ANY($1)", ids),
        lambda found: len(found) == OWNERS,
    )
    assert [row["status"] for row in rows] == ["applied"] * OWNERS
    items = await primary.fetch("SELECT title, count(*) AS n FROM item WHERE title LIKE $1 GROUP BY title", f"{run} %")
    assert {row["title"]: row["n"] for row in items} == {f"{run} {o.id}": 1 for o in owners}
