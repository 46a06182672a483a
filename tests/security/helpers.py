"""What the attack tests share: a tap that keeps message bodies, service users on the bus, DB probes."""

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from cli.bus import BusUser, Management
from shared.contracts.commands import SCHEMA_VERSION
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.contracts.headers import HEADER_ACTOR, HEADER_OWNER, HEADER_SCHEMA_VERSION
from shared.topology import COMMANDS_EXCHANGE_NAME
from tests import settings as test_settings
from tests.support.polling import eventually

MANAGEMENT = "http://guest:guest@127.0.0.1:15672"
MANAGEMENT_API = "http://127.0.0.1:15672/api"
VHOST = quote(test_settings.VHOST, safe="")


def exchange_exists(name: str) -> bool:
    url = f"{MANAGEMENT_API}/exchanges/{VHOST}/{quote(name, safe='')}"
    return httpx.get(url, auth=("guest", "guest"), timeout=5).status_code == 200


def peek_queue(name: str, count: int = 10_000) -> list[dict[str, Any]]:
    """The messages of a queue (payload and properties), left in place; a failed lookup raises,
    so that "nothing there" is never what an error looks like."""
    url = f"{MANAGEMENT_API}/queues/{VHOST}/{quote(name, safe='')}/get"
    body = {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 10_000_000}
    response = httpx.post(url, json=body, auth=("guest", "guest"), timeout=30)
    response.raise_for_status()
    messages = response.json()
    assert isinstance(messages, list), messages
    return messages


class BodyTap:
    """A queue bound to `#` on the commands and the events exchange: every message, body included."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue

    async def drain(self) -> list[AbstractIncomingMessage]:
        messages = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages

    async def count(self) -> int:
        declared = await self.queue.channel.declare_queue(self.queue.name, passive=True)
        return int(declared.declaration_result.message_count or 0)


@asynccontextmanager
async def tap_everything() -> AsyncIterator[BodyTap]:
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"test.tap.{uuid.uuid4().hex}", exclusive=True)
        await queue.bind(COMMANDS_EXCHANGE_NAME, routing_key="#")
        if exchange_exists(EVENTS_EXCHANGE_NAME):
            await queue.bind(EVENTS_EXCHANGE_NAME, routing_key="#")
        yield BodyTap(queue)


@dataclass(frozen=True)
class BusLogin:
    name: str
    password: str


def provision(user: BusUser) -> BusLogin:
    """Create (or reset) a RabbitMQ user with exactly these permissions in the test vhost."""
    password = secrets.token_urlsafe(16)
    management = Management(MANAGEMENT)
    management.ensure_vhost(test_settings.VHOST)
    management.ensure_user(test_settings.VHOST, user, password)
    return BusLogin(user.name, password)


async def connect_as(login: BusLogin) -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(
        host="127.0.0.1", login=login.name, password=login.password, virtualhost=test_settings.VHOST
    )


def command(
    body: dict[str, Any], *, user_id: str, owner: str, actor: str | None = None
) -> tuple[uuid.UUID, aio_pika.Message]:
    """A command as another service would publish it; user_id is what RabbitMQ validates."""
    command_id = uuid.uuid4()
    headers: dict[str, Any] = {HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION), HEADER_OWNER: owner}
    if actor is not None:
        headers[HEADER_ACTOR] = actor
    message = aio_pika.Message(
        json.dumps(body).encode(),
        message_id=str(command_id),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=user_id,
        headers=headers,
    )
    return command_id, message


async def publish_as(login: BusLogin, routing_key: str, message: aio_pika.Message) -> None:
    """Publish confirmed and mandatory as this user; broker refusals raise."""
    connection = await connect_as(login)
    async with connection:
        channel = await connection.channel(on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME, ensure=False)
        await exchange.publish(message, routing_key=routing_key, mandatory=True)


async def outcome_of(primary: asyncpg.Connection, command_id: uuid.UUID) -> asyncpg.Record:
    """The command's row in the inbox, once the worker has recorded it."""
    row: asyncpg.Record = await eventually(
        lambda: primary.fetchrow("SELECT status, code, actor FROM command WHERE command_id = $1", command_id),
        lambda found: found is not None,
    )
    return row


async def rows_containing(primary: asyncpg.Connection, needle: str) -> dict[str, int]:
    """Per table of our schema, how many rows mention `needle` anywhere in their text."""
    tables = await primary.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    found = {}
    for (table,) in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        count = await primary.fetchval(f"SELECT count(*) FROM {quoted} AS t WHERE t::text LIKE $1", f"%{needle}%")
        if count:
            found[table] = int(count)
    return found
