"""Changing the number of partition queues without breaking any owner's order.

Owners are spread over partitions by a consistent hash: with another count, some owners move to
another partition. If a moved owner still had commands waiting in its old partition, its new
commands could be applied first. So the change happens with every partition empty and nothing
arriving: intake stops (the commands exchange is unbound from the partitions: publishers get
their commands refused as unroutable, the gateway answers 503 and clients retry), the running
workers drain every partition, the partitions beyond the new count are deleted and the new ones
declared, and intake resumes. Workers are then restarted with the new COMMAND_PARTITIONS (one
started with the old count refuses to start: shared/topology.py).
"""

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import quote, unquote, urlparse

import aio_pika

from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    PARTITION_WEIGHT,
    PARTITIONS_EXCHANGE_NAME,
    broker_version,
    existing_partitions,
    partition_queue,
    partition_queue_name,
)


class DrainTimeout(Exception):
    """The partitions did not drain in time: intake resumed with the old count, nothing changed."""


def management_url(rabbit_url: str, configured: str = "") -> str:
    """The management API of the broker of RABBIT_URL (port 15672), unless one is configured."""
    if configured:
        return configured.rstrip("/")
    return f"http://{urlparse(rabbit_url).hostname or 'localhost'}:15672"


def _waiting(api: str, auth: tuple[str, str], vhost: str, queues: list[str]) -> int:
    """Messages in these queues, ready or delivered and not yet acknowledged (the management API
    knows the second kind; AMQP does not)."""
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


async def repartition(
    rabbit_url: str,
    count: int,
    *,
    management: str = "",
    timeout_s: float = 300.0,
    progress: Callable[[str], None] = print,
) -> int:
    """Change the number of partition queues to `count`; returns the count there was."""
    parsed = urlparse(rabbit_url)
    vhost = unquote(parsed.path[1:]) or "/"
    auth = (unquote(parsed.username or "guest"), unquote(parsed.password or "guest"))
    api = management_url(rabbit_url, management)
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        before = await existing_partitions(connection)
        if before == count:
            progress(f"already {count} partitions: nothing to do")
            return before
        channel = await connection.channel()
        commands = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        partitioned = await channel.get_exchange(PARTITIONS_EXCHANGE_NAME)
        await partitioned.unbind(commands, routing_key="#")
        progress("intake stopped: commands are refused until the partitions are drained")
        try:
            queues = [partition_queue_name(p) for p in range(before)]
            deadline = time.monotonic() + timeout_s
            while (waiting := await asyncio.to_thread(_waiting, api, auth, vhost, queues)) > 0:
                if time.monotonic() > deadline:
                    raise DrainTimeout(f"{waiting} commands still wait after {timeout_s:.0f} s: is a worker running?")
                progress(f"draining: {waiting} commands wait")
                await asyncio.sleep(0.5)
            for partition in range(count, before):
                await channel.queue_delete(partition_queue_name(partition), if_unused=False, if_empty=False)
            version = broker_version(connection)
            for partition in range(before, count):
                queue = partition_queue(partition, version)
                declared = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
                await declared.bind(partitioned, routing_key=PARTITION_WEIGHT)
        finally:
            await partitioned.bind(commands, routing_key="#")
            progress("intake resumed")
    progress(f"partitions: {before} -> {count}; restart the workers with COMMAND_PARTITIONS={count}")
    return before
