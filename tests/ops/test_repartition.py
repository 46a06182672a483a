"""Changing the partition count: intake stops, every partition drains, stale queues go, and no owner's
commands overtake each other; a worker started with the old count refuses to start."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import pytest
from aiormq.exceptions import DeliveryError

from cli.repartition import NotEmpty, delete_if_empty, management_api
from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    PARTITION_WEIGHT,
    PARTITIONS_EXCHANGE_NAME,
    existing_partitions,
    partition_queue_name,
)
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.support.api import Client, sign_up
from tests.support.bus import command_message
from tests.support.polling import eventually
from tests.support.processes import ROOT, Worker
from tests.support.rabbit import vhost_of_its_own

VHOST = f"{test_settings.VHOST}_repartition"
URL = f"amqp://guest:guest@127.0.0.1:5672/{quote(VHOST, safe='')}"
MANAGEMENT = "http://127.0.0.1:15672/api"
OWNERS, BACKLOG, AFTER = 12, 40, 10


class VhostWorker(Worker):
    """A worker of the test database on a vhost of its own, with its own partition count."""

    def __init__(self, partitions: int, name: str) -> None:
        super().__init__({"RABBIT_URL": URL, "COMMAND_PARTITIONS": str(partitions)}, name)
        self.partitions = partitions

    def ready(self) -> bool:
        return all(_queue(partition_queue_name(p)).get("consumers", 0) > 0 for p in range(self.partitions))


def _queue(name: str) -> dict[str, int]:
    response = httpx.get(f"{MANAGEMENT}/queues/{quote(VHOST, safe='')}/{name}", auth=("guest", "guest"), timeout=5)
    return dict(response.json()) if response.status_code == 200 else {}


@pytest.fixture
def own_vhost(stack: object) -> Iterator[str]:
    """A new vhost for each test: each starts from no topology at all."""
    with vhost_of_its_own(VHOST) as url:
        yield url


async def _publish(owners: list[Client], first: int, count: int) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        for n in range(first, first + count):
            for owner in owners:
                body = {"owner_id": owner.id, "title": f"{n:03d}"}
                message = command_message(body, actor=f"user:{owner.id}", owner=str(owner.id))
                await exchange.publish(message, routing_key="item.create", mandatory=True)


async def _refused() -> bool:
    """A command published now is refused as unroutable (intake stopped)."""
    try:
        await _publish([Client(2_000_000_000, "", {})], 999, 1)  # an owner that does not exist
    except DeliveryError:
        return True
    return False


async def test_lowering_the_partition_count_drains_first_and_keeps_each_owners_order(
    http: httpx.AsyncClient, primary: asyncpg.Connection, own_vhost: str
) -> None:
    owners = [await sign_up(http) for _ in range(OWNERS)]
    with VhostWorker(4, "worker-4-partitions"):
        pass  # declares the topology of 4 partitions
    await _publish(owners, 0, BACKLOG)  # a backlog, no worker running
    changing = _repartition_to(2)
    assert await eventually(_refused, lambda refused: refused)  # intake stopped while the backlog waits
    with VhostWorker(4, "worker-draining"):  # the old workers drain every partition
        said = (await changing).stdout
    assert "partitions: 4 -> 2" in said
    connection = await aio_pika.connect(URL)
    async with connection:
        assert await existing_partitions(connection) == 2  # p2 and p3 are gone, with their bindings
    stale = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "worker"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=VhostWorker(4, "stale").env,
    )  # fmt: skip
    assert stale.returncode == 2, stale.stderr
    assert "repartition" in stale.stderr
    with VhostWorker(2, "worker-2-partitions"):
        await _publish(owners, BACKLOG, AFTER)
        for owner in owners:
            titles = await eventually(
                lambda owner=owner: primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY id", owner.id),
                lambda rows: len(rows) == BACKLOG + AFTER,
            )
            assert [row["title"] for row in titles] == [f"{n:03d}" for n in range(BACKLOG + AFTER)]


def _repartition_to(count: int) -> "asyncio.Task[subprocess.CompletedProcess[str]]":
    """`opengovfood bus repartition COUNT` running in the background."""
    return asyncio.create_task(
        asyncio.to_thread(
            opengovfood, "bus", "repartition", str(count), "--yes", "--timeout", "120", env={"RABBIT_URL": URL}
        )
    )


async def test_a_worker_restarted_during_the_drain_does_not_reopen_intake(
    http: httpx.AsyncClient, primary: asyncpg.Connection, own_vhost: str
) -> None:
    """A worker (re)starting declares the topology, which bound the commands exchange again: intake
    reopened in the middle of the drain, with the old count."""
    owners = [await sign_up(http) for _ in range(3)]
    with VhostWorker(4, "worker-before-drain"):
        pass  # declares the topology of 4 partitions
    await _publish(owners, 0, BACKLOG)
    changing = _repartition_to(2)
    assert await eventually(_refused, lambda refused: refused)
    with VhostWorker(4, "worker-restarted-in-drain"):  # declares the topology again, then drains
        await eventually(lambda: _items(primary, owners), lambda n: n == len(owners) * BACKLOG, 60)
        still_closed = await _refused()
        in_progress = not changing.done()
        said = (await changing).stdout
    assert in_progress, said  # the check above was made during the change (it waits 11 s once drained)
    assert still_closed, "intake reopened by a worker's restart during the drain"
    assert "partitions: 4 -> 2" in said
    assert not await _refused()  # intake resumed once the change completed


async def test_a_repartition_killed_midway_leaves_intake_closed_until_it_runs_again(
    http: httpx.AsyncClient, own_vhost: str
) -> None:
    """The operator's process dies during the drain: a worker restarted later still finds intake
    closed (the marker stays), and `repartition` to the count there is reopens it."""
    owners = [await sign_up(http)]
    with VhostWorker(4, "worker-before-kill"):
        pass
    await _publish(owners, 0, BACKLOG)  # no worker: the drain cannot end
    executable = str(Path(sys.executable).with_name("opengovfood"))
    env = {**os.environ, **test_settings.ENV, "RABBIT_URL": URL}
    changing = await asyncio.create_subprocess_exec(
        executable, "bus", "repartition", "2", "--yes", cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        assert await eventually(_refused, lambda refused: refused)
    finally:
        changing.kill()  # as kill -9 would: no cleanup
        await asyncio.wait_for(changing.wait(), 30)
    with VhostWorker(4, "worker-after-kill"):
        assert await _refused(), "intake reopened after the repartition was killed"
        again = await asyncio.to_thread(opengovfood, "bus", "repartition", "4", "--yes", env={"RABBIT_URL": URL})
        assert "intake resumed" in again.stdout
        assert not await _refused()


async def _items(primary: asyncpg.Connection, owners: list[Client]) -> int:
    return int(await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = ANY($1)", [o.id for o in owners]))


async def test_a_partition_queue_holding_messages_is_never_deleted(own_vhost: str) -> None:
    """Quorum queues refuse queue.delete(if_empty=True): the queue is unbound, counted, and kept
    (bound again) while it holds a message."""
    with VhostWorker(4, "worker-topology"):
        pass
    last = partition_queue_name(3)
    api, auth = management_api(URL)
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"accepted, not yet applied"), routing_key=last)
        with pytest.raises(NotEmpty):
            await delete_if_empty(connection, api, auth, VHOST, last)
        assert (await channel.declare_queue(last, passive=True)).declaration_result.message_count == 1
        assert _bound(last)
        await (await channel.declare_queue(last, passive=True)).purge()
        await delete_if_empty(connection, api, auth, VHOST, last)
        assert await existing_partitions(connection) == 3


def _bound(queue: str) -> bool:
    url = f"{MANAGEMENT}/queues/{quote(VHOST, safe='')}/{quote(queue, safe='')}/bindings"
    response = httpx.get(url, auth=("guest", "guest"), timeout=5)
    response.raise_for_status()
    return any(
        b["source"] == PARTITIONS_EXCHANGE_NAME and b["routing_key"] == PARTITION_WEIGHT for b in response.json()
    )
