"""The worker's broker connection cut twice mid-stream (through a proxy: the machine's RabbitMQ keeps
running for everyone else): each time the partition consumers notice, discard the FastStream broker
and subscribe again on a fresh one (worker/connection.py), and every command is applied once, in
each owner's order."""

import asyncio

import asyncpg
import httpx

from tests import settings as test_settings
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Worker, partitions_consumed, wait_until
from tests.support.proxy import TcpProxy

OWNERS, PER_OWNER = 3, 3_000
CUT_AT = (1_000, 5_000)  # rows applied when the connection is cut: mid-stream, twice
PARTITIONS = int(test_settings.ENV["COMMAND_PARTITIONS"])
RABBIT_PORT = 5672  # the machine's broker, as test_settings.RABBIT_URL names it


def _resubscriptions(worker: Worker) -> int:
    return worker.log_path.read_bytes().count(b"consuming stopped")


def _subscriptions(worker: Worker) -> int:
    """Subscribers started, as FastStream logs each (one per partition at start and after each cut)."""
    return worker.log_path.read_bytes().count(b"`Subscriber` waiting for messages")


async def test_a_cut_broker_connection_resumes_consuming_in_order_and_applies_each_command_once(
    http: httpx.AsyncClient, primary: asyncpg.Connection, worker: Worker
) -> None:
    owners = [(await sign_up(http)).id for _ in range(OWNERS)]
    messages = [
        ("item.create", command_message({"owner_id": owner, "title": f"{n:05d}"}, actor=f"user:{owner}",
                                        owner=str(owner)))
        for n in range(PER_OWNER) for owner in owners
    ]  # fmt: skip

    async def applied() -> int:
        return int(await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = ANY($1)", owners))

    worker.stop()
    try:
        with TcpProxy(RABBIT_PORT) as proxy:
            url = test_settings.RABBIT_URL.replace(f":{RABBIT_PORT}/", f":{proxy.port}/")
            one = Worker(env={"RABBIT_URL": url}, name="worker-behind-a-broker-proxy")
            one.log_path.unlink(missing_ok=True)
            with one:
                publishing = asyncio.create_task(publish(messages))  # confirmed one by one: a stream, not a heap
                at_cut = []
                for cut, threshold in enumerate(CUT_AT, start=1):
                    at_cut.append(await eventually(applied, lambda n, t=threshold: n >= t, 60))
                    seen = _resubscriptions(one)
                    proxy.cut()
                    wait_until(lambda s=seen: _resubscriptions(one) > s, 20, "the consumers to notice the cut")
                    proxy.restore()
                    subscribed = PARTITIONS * (cut + 1)
                    wait_until(lambda n=subscribed: _subscriptions(one) >= n, 60, "every partition subscribed again")
                    wait_until(lambda: partitions_consumed(PARTITIONS), 30, "every partition consumed again")
                await publishing
                total = await eventually(applied, lambda n: n >= len(messages), 120)
    finally:
        worker.start()
    assert all(n < len(messages) for n in at_cut), f"a cut came after the stream: {at_cut}"
    assert total == len(messages)  # nothing lost, nothing applied twice
    for owner in owners:
        rows = await primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY id", owner)
        titles = [row["title"] for row in rows]
        assert titles == [f"{n:05d}" for n in range(PER_OWNER)]  # in the order accepted
