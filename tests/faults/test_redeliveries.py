"""The broker never drops a command: however often its deliveries go back to the queue (every kill
of a worker returns what it had prefetched, and RabbitMQ 3.x counts each return), the worker alone
decides what is poison. With PostgreSQL unreachable, the worker is killed five times under a
backlog; once PostgreSQL is back, every command has its outcome, in each owner's order."""

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import asyncpg
import httpx

from shared.topology import DEAD_LETTER_QUEUE_NAME, PARTITION_QUEUE_PREFIX
from tests import settings as test_settings
from tests.security.helpers import MANAGEMENT_API, VHOST, peek_queue
from tests.support.api import Client, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Worker, wait_until
from tests.support.proxy import TcpProxy

OWNERS, PER_OWNER, RESTARTS = 3, 100, 5
STATS_INTERVAL_S = 5.5  # RabbitMQ's collect_statistics_interval (5 s), and a little more


@contextmanager
def database_unreachable(worker: Worker) -> Iterator[tuple[TcpProxy, str]]:
    """The stack's worker stopped; the test's workers reach PostgreSQL through a proxy, cut for now."""
    worker.stop()
    with TcpProxy(test_settings.PRIMARY_PORT) as proxy:
        proxy.cut()
        url = test_settings.WORKER_DATABASE_URL.replace(f":{test_settings.PRIMARY_PORT}/", f":{proxy.port}/")
        yield proxy, url
    worker.start()


def _retrying(worker: Worker, logged: int) -> bool:
    """The worker holds deliveries it cannot apply (it says so in its log, after `logged` bytes)."""
    with worker.log_path.open("rb") as log:
        log.seek(logged)
        seen = log.read()
    return b"database unavailable" in seen or b"batch not finished" in seen


async def test_restarts_under_a_backlog_lose_no_command_and_keep_each_owners_order(
    http: httpx.AsyncClient, primary: asyncpg.Connection, worker: Worker
) -> None:
    owners = [await sign_up(http) for _ in range(OWNERS)]
    with database_unreachable(worker) as (proxy, url):
        await _restart_under_a_backlog(primary, owners, proxy, url)


async def _restart_under_a_backlog(
    primary: asyncpg.Connection, owners: list[Client], proxy: TcpProxy, url: str
) -> None:
    messages = [
        ("item.create", command_message(
            {"owner_id": owner.id, "title": f"{n:03d}"}, actor=f"user:{owner.id}", owner=str(owner.id)))
        for n in range(PER_OWNER) for owner in owners
    ]  # fmt: skip
    await publish(messages)
    for restart in range(RESTARTS):
        doomed = Worker(env={"DATABASE_URL": url}, name=f"worker-restart-{restart}")
        logged = doomed.log_path.stat().st_size if doomed.log_path.exists() else 0
        try:
            doomed.start()
            wait_until(partial(_retrying, doomed, logged), 30, f"worker {restart} to hold a batch it cannot apply")
        finally:
            doomed.kill()  # its deliveries go back to the queues, each counted by the broker
    proxy.restore()
    with Worker(env={"DATABASE_URL": url}, name="worker-after-restarts"):
        ids = [uuid for _, message in messages if (uuid := message.message_id)]
        outcomes = await eventually(
            lambda: primary.fetch("SELECT command_id::text, status FROM command WHERE command_id::text = ANY($1)", ids),
            lambda rows: len(rows) == len(ids),
            deadline_s=60,
        )
    assert {row["status"] for row in outcomes} == {"applied"}
    for owner in owners:
        titles = [
            r["title"] for r in await primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY id", owner.id)
        ]
        assert titles == [f"{n:03d}" for n in range(PER_OWNER)]  # in the order accepted
    dead = {m["properties"].get("message_id") for m in peek_queue(DEAD_LETTER_QUEUE_NAME)}
    assert not dead & set(ids)


async def test_a_transient_failure_is_retried_in_place_never_requeued(
    http: httpx.AsyncClient, primary: asyncpg.Connection, worker: Worker
) -> None:
    """With PostgreSQL unreachable the worker keeps its deliveries and retries: nothing goes back
    to the queue (a requeued message would come back behind later ones), as the broker counts it."""
    owner = await sign_up(http)
    messages = [
        ("item.create", command_message({"owner_id": owner.id, "title": f"{n:03d}"}, actor=f"user:{owner.id}",
                                        owner=str(owner.id)))
        for n in range(PER_OWNER)
    ]  # fmt: skip
    with database_unreachable(worker) as (proxy, url), Worker(env={"DATABASE_URL": url}, name="worker-in-place") as one:
        before = await _settled_stats()
        logged = one.log_path.stat().st_size
        await publish(messages)
        wait_until(lambda: _retries(one, logged) >= 3, 60, "the worker to retry its batch three times")
        proxy.restore()
        ids = [uuid.UUID(message.message_id) for _, message in messages if message.message_id]
        await eventually(
            lambda: primary.fetchval("SELECT count(*) FROM command WHERE command_id = ANY($1)", ids),
            lambda n: n == len(ids),
            60,
        )
        after = await eventually(_partition_stats, lambda now: now["ack"] >= before["ack"] + len(ids), 30)
    titles = [
        r["title"] for r in await primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY id", owner.id)
    ]
    assert titles == [f"{n:03d}" for n in range(PER_OWNER)]
    assert after["redeliver"] == before["redeliver"]  # the same sample that counts our acks counts no return


def _retries(worker: Worker, logged: int) -> int:
    with worker.log_path.open("rb") as log:
        log.seek(logged)
        return log.read().count(b"database unavailable")


async def _partition_stats() -> dict[str, int]:
    """Acks and redeliveries of all the partition queues, as the management API last sampled them."""
    url = f"{MANAGEMENT_API}/queues/{VHOST}?columns=name,message_stats"
    async with httpx.AsyncClient(auth=("guest", "guest"), timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    stats = [q.get("message_stats", {}) for q in response.json() if q["name"].startswith(PARTITION_QUEUE_PREFIX)]
    return {key: sum(int(s.get(key, 0)) for s in stats) for key in ("ack", "redeliver")}


async def _settled_stats() -> dict[str, int]:
    """The statistics once two samples, one interval apart, agree: earlier tests' counts are in."""
    previous = await _partition_stats()
    for _ in range(6):
        await asyncio.sleep(STATS_INTERVAL_S)  # the management API's sampling interval: polling its next sample
        current = await _partition_stats()
        if current == previous:
            return current
        previous = current
    raise AssertionError(f"the queue statistics did not settle: {previous}")
