"""Changing the number of partition queues without breaking any owner's order.

Owners are spread over partitions by a consistent hash: with another count, some owners move to
another partition. If a moved owner still had commands waiting in its old partition, its new
commands could be applied first. So the change happens with every partition empty and nothing
arriving: intake stops (the commands exchange is unbound from the partitions: publishers get
their commands refused as unroutable, the gateway answers 503 and clients retry), the running
workers drain every partition, the partitions beyond the new count are deleted and the new ones
declared, and intake resumes. Workers are then restarted with the new COMMAND_PARTITIONS (one
started with the old count refuses to start: shared/topology.py).

Intake stays closed whatever restarts meanwhile: a marker exchange on the broker says a change is
under way, and declare_topology does not bind the commands exchange while it exists. The marker
goes only once intake is open again; a repartition killed midway leaves it, and intake closed,
until `repartition` runs again (to any count; to the count there is, it only reopens intake). A
partition queue is deleted only once it is unbound and empty: quorum queues refuse
`queue.delete(if_empty=True)` (NOT_IMPLEMENTED on RabbitMQ 3.x), so the check comes first, and a
queue that still holds a message goes back to draining.
"""

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import Callable, Sequence
from urllib.parse import quote, unquote, urlparse

import aio_pika

from shared.brokers import Brokers, amqp_connect
from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    PARTITION_WEIGHT,
    PARTITIONS_EXCHANGE_NAME,
    REPARTITION_MARKER_NAME,
    broker_version,
    existing_partitions,
    partition_queue,
    partition_queue_name,
    repartitioning,
)

STATS_SETTLE_S = 11.0  # over two of the management API's statistics intervals (5 s by default)


class DrainTimeout(Exception):
    """The partitions did not drain in time: intake resumed with the old count, nothing changed."""


class NotEmpty(Exception):
    """A partition queue to delete still holds messages: it is not deleted."""


def management_api(rabbit_url: str, configured: str = "") -> tuple[str, tuple[str, str]]:
    """The management API (base URL, credentials): RABBIT_MANAGEMENT_URL's when configured (its own
    credentials, else RABBIT_URL's), else port 15672 of the host of `rabbit_url` (the broker that answered)."""
    bus = urlparse(rabbit_url)
    auth = (unquote(bus.username or "guest"), unquote(bus.password or "guest"))
    if not configured:
        return f"http://{bus.hostname or 'localhost'}:15672", auth
    api = urlparse(configured)
    if api.username:
        auth = (unquote(api.username), unquote(api.password or ""))
    return f"{api.scheme}://{api.hostname}{f':{api.port}' if api.port else ''}", auth


def _in_flight(api: str, auth: tuple[str, str], vhost: str, queues: list[str]) -> int:
    """Messages in these queues, ready or delivered and not yet acknowledged, as the management API
    last sampled them (AMQP cannot tell the second kind; the samples are a few seconds old)."""
    credentials = base64.b64encode(":".join(auth).encode()).decode()
    total = 0
    for name in queues:
        request = urllib.request.Request(
            f"{api}/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}",
            headers={"Authorization": f"Basic {credentials}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (an http(s) URL we built)
            total += int(json.load(response).get("messages", 0))
    return total


async def _ready(connection: aio_pika.abc.AbstractConnection, queues: list[str]) -> int:
    """Messages waiting in these queues, exactly as the queues count them now."""
    channel = await connection.channel()
    try:
        total = 0
        for name in queues:
            total += int((await channel.declare_queue(name, passive=True)).declaration_result.message_count or 0)
        return total
    finally:
        await channel.close()


async def _drain(
    connection: aio_pika.abc.AbstractConnection, api: str, auth: tuple[str, str], vhost: str, queues: list[str],
    timeout_s: float, progress: Callable[[str], None],
) -> None:  # fmt: skip
    """Until nothing waits and nothing is in a worker's hands. Nothing arrives any more, so once no
    message is ready none is delivered again, and a statistics sample taken STATS_SETTLE_S later
    that shows none unacknowledged is to be trusted."""
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if await _ready(connection, queues) > 0:
            quiet_since = None
        else:
            quiet_since = quiet_since or now
            in_hand = await asyncio.to_thread(_in_flight, api, auth, vhost, queues)
            if now - quiet_since >= STATS_SETTLE_S and in_hand == 0:
                return
        if now > deadline:
            raise DrainTimeout(f"the partitions did not drain in {timeout_s:.0f} s: is a worker running?")
        progress("draining the partitions")
        await asyncio.sleep(0.5)


async def delete_if_empty(
    connection: aio_pika.abc.AbstractConnection, api: str, auth: tuple[str, str], vhost: str, name: str
) -> None:
    """Delete a partition queue only if nothing can reach it and nothing is in it (NotEmpty if it
    holds messages, ready or in a consumer's hands): first unbound, so no command can be routed to
    it any more, then counted, then deleted."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        await queue.unbind(PARTITIONS_EXCHANGE_NAME, routing_key=PARTITION_WEIGHT)
        ready = int((await channel.declare_queue(name, passive=True)).declaration_result.message_count or 0)
        if ready or await asyncio.to_thread(_in_flight, api, auth, vhost, [name]):
            await queue.bind(PARTITIONS_EXCHANGE_NAME, routing_key=PARTITION_WEIGHT)
            raise NotEmpty(f"{name} still holds messages: not deleted")
        await channel.queue_delete(name, if_unused=False, if_empty=False)  # if_empty: not on quorum queues
    finally:
        if not channel.is_closed:
            await channel.close()


async def repartition(
    rabbit_urls: str | Sequence[str],
    count: int,
    *,
    management: str = "",
    timeout_s: float = 300.0,
    progress: Callable[[str], None] = print,
) -> int:
    """Change the number of partition queues to `count` (on the first broker of the list that answers);
    returns the count there was."""
    brokers = Brokers(rabbit_urls)
    connection = await brokers.connect(amqp_connect)
    vhost = unquote(urlparse(brokers.current).path[1:]) or "/"
    api, auth = management_api(brokers.current, management)
    async with connection:
        before = await existing_partitions(connection)
        channel = await connection.channel()
        commands = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        partitioned = await channel.get_exchange(PARTITIONS_EXCHANGE_NAME)
        if before == count:
            if await repartitioning(connection):  # an interrupted change left intake closed
                await _resume_intake(channel, commands, partitioned, progress)
            progress(f"already {count} partitions: nothing to do")
            return before
        # The marker first, then the unbind: a declare_topology that binds in between sees the marker
        # right after its bind and undoes it (shared/topology.py).
        await channel.declare_exchange(REPARTITION_MARKER_NAME, "fanout", durable=True)
        await partitioned.unbind(commands, routing_key="#")
        progress("intake stopped: commands are refused until the partitions are drained")
        try:
            await _change(connection, channel, partitioned, api, auth, vhost, before, count, timeout_s, progress)
        finally:
            await _resume_intake(channel, commands, partitioned, progress)
    progress(f"partitions: {before} -> {count}; restart the workers with COMMAND_PARTITIONS={count}")
    return before


async def _change(
    connection: aio_pika.abc.AbstractConnection, channel: aio_pika.abc.AbstractChannel,
    partitioned: aio_pika.abc.AbstractExchange, api: str, auth: tuple[str, str], vhost: str, before: int,
    count: int, timeout_s: float, progress: Callable[[str], None],
) -> None:  # fmt: skip
    """With intake closed: drain, delete the partitions beyond `count` (each only once empty: else
    drain again), declare the new ones."""
    deadline = time.monotonic() + timeout_s
    queues = [partition_queue_name(p) for p in range(before)]
    while True:
        await _drain(connection, api, auth, vhost, queues, max(deadline - time.monotonic(), 0), progress)
        try:
            for partition in reversed(range(count, before)):  # from the top: the rest stays contiguous
                await delete_if_empty(connection, api, auth, vhost, partition_queue_name(partition))
                queues.remove(partition_queue_name(partition))
            break
        except NotEmpty as refused:
            progress(f"{refused}; draining again")
    version = broker_version(connection)
    for partition in range(before, count):
        queue = partition_queue(partition, version)
        declared = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
        await declared.bind(partitioned, routing_key=PARTITION_WEIGHT)


async def _resume_intake(
    channel: aio_pika.abc.AbstractChannel, commands: aio_pika.abc.AbstractExchange,
    partitioned: aio_pika.abc.AbstractExchange, progress: Callable[[str], None],
) -> None:  # fmt: skip
    await partitioned.bind(commands, routing_key="#")
    await channel.exchange_delete(REPARTITION_MARKER_NAME)
    progress("intake resumed")
