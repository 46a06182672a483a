"""The test vhost, emptied of our topology so each run declares it afresh."""

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import aio_pika
import httpx

from cli.bus import Management, apply_retention
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.event_log import EVENT_LOG_NAME
from shared.settings import Settings
from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    DEAD_LETTER_EXCHANGE_NAME,
    DEAD_LETTER_QUEUE_NAME,
    PARTITIONS_EXCHANGE_NAME,
    partition_queue_name,
)
from tests import settings as test_settings

MAX_PARTITIONS = 64


MANAGEMENT_API = f"{test_settings.MANAGEMENT_URL}/api"


def ensure_vhost() -> None:
    """Create the test vhost with full permissions for guest, and the event log's retention policy
    as `opengovfood bus provision` sets it (idempotent)."""
    vhost = quote(test_settings.VHOST, safe="")
    auth = ("guest", "guest")
    httpx.put(f"{MANAGEMENT_API}/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    httpx.put(f"{MANAGEMENT_API}/permissions/{vhost}/guest", json=permissions, auth=auth, timeout=10).raise_for_status()
    apply_retention(Management("http://guest:guest@127.0.0.1:15672"), test_settings.VHOST, Settings())


async def reset_vhost() -> None:
    ensure_vhost()
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        for partition in range(MAX_PARTITIONS):
            await channel.queue_delete(partition_queue_name(partition))
        await channel.queue_delete(DEAD_LETTER_QUEUE_NAME)
        await channel.queue_delete(EVENT_LOG_NAME)
        for exchange in (
            COMMANDS_EXCHANGE_NAME,
            PARTITIONS_EXCHANGE_NAME,
            DEAD_LETTER_EXCHANGE_NAME,
            EVENTS_EXCHANGE_NAME,
        ):
            await channel.exchange_delete(exchange)


@contextmanager
def vhost_of_its_own(vhost: str) -> Iterator[str]:
    """A vhost made afresh (guest may do anything in it), deleted afterwards: its AMQP URL."""
    path, auth = f"{MANAGEMENT_API}/vhosts/{quote(vhost, safe='')}", ("guest", "guest")
    httpx.delete(path, auth=auth, timeout=10)
    httpx.put(path, auth=auth, timeout=10).raise_for_status()
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    httpx.put(
        f"{MANAGEMENT_API}/permissions/{quote(vhost, safe='')}/guest", json=permissions, auth=auth, timeout=10
    ).raise_for_status()
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    finally:
        httpx.delete(path, auth=auth, timeout=10)
