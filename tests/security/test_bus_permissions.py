"""Least privilege on the bus: what the broker refuses, and what the worker rejects, per role."""

import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from cli.bus import BusUser, gateway_user, reader_user, service_user, worker_user
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.event_log import EVENT_LOG_BINDING_KEY, EVENT_LOG_NAME, read_log
from shared.settings import ServiceGrant
from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    DEAD_LETTER_EXCHANGE_NAME,
    EVENT_LOG,
    declare_queue,
    declare_topology,
    partition_queue_name,
)
from tests import settings as test_settings
from tests.security.helpers import (
    MANAGEMENT_API,
    VHOST,
    BusLogin,
    command,
    connect_as,
    outcome_of,
    provision,
    publish_as,
)
from tests.support.api import sign_up
from tests.support.processes import Gateway, Worker, free_port, queue_info, wait_until

PREFIX = test_settings.VHOST


def _service(name: str) -> BusLogin:
    return provision(service_user(name, ServiceGrant.model_validate(test_settings.SERVICE_GRANTS[name])))


@pytest.fixture(scope="module")
def writer(stack: object) -> BusLogin:
    return _service(test_settings.SERVICE_WRITER)


@pytest.fixture(scope="module")
def limited(stack: object) -> BusLogin:
    return _service(test_settings.SERVICE_LIMITED)


@pytest.fixture(scope="module")
def rogue(stack: object) -> BusLogin:
    """A service the broker lets publish anything (a misconfiguration) but that has no grant."""
    anything = {COMMANDS_EXCHANGE_NAME: (".*", "^$")}
    return provision(BusUser(f"{PREFIX}.svc-rogue", write=f"^{COMMANDS_EXCHANGE_NAME}$", topics=anything))


async def _refused(login: BusLogin, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
    connection = await connect_as(login)
    async with connection:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await target.publish(message, routing_key=routing_key)


async def _ignore(message: AbstractIncomingMessage) -> None:
    del message


async def _consume(channel: AbstractChannel, queue: str) -> None:
    declared = await channel.declare_queue(queue, passive=True)
    await declared.consume(_ignore)


async def _assert_refused(login: BusLogin, action: Callable[[AbstractChannel], Awaitable[Any]]) -> None:
    """The broker closes the channel with ACCESS_REFUSED (403)."""
    connection = await connect_as(login)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await action(channel)


async def _items_of(primary: asyncpg.Connection, owner_id: int) -> int:
    return int(await primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", owner_id))


async def test_a_service_publishing_a_command_type_it_is_not_granted_is_refused_by_the_broker(
    http: httpx.AsyncClient, limited: BusLogin, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    for key, body in (("item.delete", {"item_id": 1}), ("user.delete", {"user_id": owner.id})):
        _, message = command(body, user_id=limited.name, owner=str(owner.id))
        await _refused(limited, COMMANDS_EXCHANGE_NAME, key, message)
    assert await primary.fetchval('SELECT count(*) FROM "user" WHERE id = $1', owner.id) == 1


async def test_a_command_type_or_owner_not_granted_is_rejected_by_the_worker_and_never_applied(
    http: httpx.AsyncClient, rogue: BusLogin, limited: BusLogin, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    attempts = [
        (rogue, "item.create", {"owner_id": owner.id, "title": "rogue"}, "not_found"),
        (rogue, "user.create", {"email": f"{uuid.uuid4().hex}@example.org", "full_name": "R",
                                "hashed_password": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"},
         "forbidden"),
        (limited, "item.create", {"owner_id": owner.id, "title": "not my owner"}, "not_found"),
    ]  # fmt: skip
    for login, key, body, code in attempts:
        command_id, message = command(body, user_id=login.name, owner=str(owner.id))
        await publish_as(login, key, message)
        outcome = await outcome_of(primary, command_id)
        assert (outcome["status"], outcome["code"], outcome["actor"]) == ("rejected", code, f"service:{login.name}")
    assert await _items_of(primary, owner.id) == 0


async def test_a_service_claiming_a_user_as_actor_is_still_the_service(
    http: httpx.AsyncClient, limited: BusLogin, writer: BusLogin, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    claimed = f"user:{owner.id}"
    command_id, message = command(
        {"owner_id": owner.id, "title": "as the user"}, user_id=limited.name, owner=str(owner.id), actor=claimed
    )
    await publish_as(limited, "item.create", message)
    outcome = await outcome_of(primary, command_id)
    assert (outcome["status"], outcome["actor"]) == ("rejected", f"service:{limited.name}")
    assert await _items_of(primary, owner.id) == 0
    # A granted service gets what its grant allows, recorded as itself, never as the user it named.
    command_id, message = command(
        {"owner_id": owner.id, "title": "by the service"}, user_id=writer.name, owner=str(owner.id), actor=claimed
    )
    await publish_as(writer, "item.create", message)
    outcome = await outcome_of(primary, command_id)
    assert (outcome["status"], outcome["actor"]) == ("applied", f"service:{writer.name}")


async def test_spoofing_another_user_id_is_refused_by_the_broker(
    http: httpx.AsyncClient, writer: BusLogin, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    for spoofed in ("guest", test_settings.SERVICE_LIMITED):
        command_id, message = command(
            {"owner_id": owner.id, "title": "spoofed"}, user_id=spoofed, owner=str(owner.id), actor=f"user:{owner.id}"
        )
        with pytest.raises(ChannelPreconditionFailed):
            await publish_as(writer, "item.create", message)
    assert await _items_of(primary, owner.id) == 0


async def test_the_gateway_user_may_publish_commands_and_use_its_reply_queue_only(
    stack: object, primary: asyncpg.Connection
) -> None:
    gateway = provision(gateway_user(f"{PREFIX}.gateway"))
    _, message = command({"item_id": 1}, user_id=gateway.name, owner="1")
    await _refused(gateway, COMMANDS_EXCHANGE_NAME, "item.drop-everything", message)  # topic permission
    command_id, allowed = command(
        {"owner_id": test_settings.UNGRANTED_OWNER, "title": "t"}, user_id=gateway.name, owner="1", actor="anonymous"
    )
    await publish_as(gateway, "item.create", allowed)  # a command routing key: the broker takes it
    await _refused(gateway, DEAD_LETTER_EXCHANGE_NAME, "item.delete", message)
    connection = await connect_as(gateway)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(f"opengovfood.replies.{uuid.uuid4().hex}", exclusive=True)
        await replies.consume(_ignore)
    await _assert_refused(gateway, lambda ch: _consume(ch, partition_queue_name(0)))
    await _assert_refused(gateway, lambda ch: ch.exchange_delete(COMMANDS_EXCHANGE_NAME))
    await _assert_refused(gateway, lambda ch: ch.queue_delete(partition_queue_name(0)))
    outcome = await outcome_of(primary, command_id)  # not GATEWAY_BUS_USER here: it acts as a service
    assert (outcome["status"], outcome["actor"]) == ("rejected", f"service:{gateway.name}")


async def _bind_log(channel: AbstractChannel, exchange: str, routing_key: str) -> None:
    log = await channel.get_queue(EVENT_LOG_NAME, ensure=False)
    await log.bind(exchange, routing_key)


async def _unbind_log(channel: AbstractChannel, exchange: str, routing_key: str) -> None:
    log = await channel.get_queue(EVENT_LOG_NAME, ensure=False)
    await log.unbind(exchange, routing_key)


def _log_bound() -> bool:
    url = f"{MANAGEMENT_API}/bindings/{VHOST}/e/{EVENTS_EXCHANGE_NAME}/q/{EVENT_LOG_NAME}"
    return bool(httpx.get(url, auth=("guest", "guest"), timeout=10).json())


async def test_the_worker_user_declares_the_topology_but_cannot_publish_commands(stack: object) -> None:
    worker = provision(worker_user(f"{PREFIX}.worker"))
    url = f"amqp://{quote(worker.name, safe='')}:{quote(worker.password, safe='')}@127.0.0.1:5672/{VHOST}"
    admin = await aio_pika.connect(test_settings.RABBIT_URL)
    async with admin:  # the stack's worker bound the log as guest: undo that, so that this user binds it
        await _unbind_log(await admin.channel(), EVENTS_EXCHANGE_NAME, EVENT_LOG_BINDING_KEY)
    assert not _log_bound()
    try:
        await declare_topology(url, int(test_settings.ENV["COMMAND_PARTITIONS"]))
        assert _log_bound()
    finally:
        async with await aio_pika.connect(test_settings.RABBIT_URL) as admin:  # whatever happened: bound again
            await _bind_log(await admin.channel(), EVENTS_EXCHANGE_NAME, EVENT_LOG_BINDING_KEY)
    _, message = command({"item_id": 1}, user_id=worker.name, owner="1")
    await _refused(worker, COMMANDS_EXCHANGE_NAME, "item.delete", message)


async def test_an_event_reader_reads_events_and_publishes_nothing(stack: object) -> None:
    name = f"{PREFIX}.reader"
    reader = provision(reader_user(name))
    connection = await connect_as(reader)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{name}.events", exclusive=True)
        await queue.bind(EVENTS_EXCHANGE_NAME, routing_key="item.*")
    _, message = command({"item_id": 1}, user_id=reader.name, owner="1")
    await _refused(reader, EVENTS_EXCHANGE_NAME, "item.deleted", message)
    await _refused(reader, COMMANDS_EXCHANGE_NAME, "item.delete", message)
    await _assert_refused(reader, lambda ch: _consume(ch, partition_queue_name(0)))


async def test_an_event_reader_reads_the_log_and_cannot_change_it(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    await sign_up(http)  # at least one event in the log
    reader = provision(reader_user(f"{PREFIX}.reader"))
    connection = await connect_as(reader)
    async with connection, aclosing(read_log(await connection.channel(), "first", idle_s=10)) as entries:
        first = await anext(entries)
    assert json.loads(first.body)["event_id"]
    await _assert_refused(reader, lambda ch: declare_queue(ch, EVENT_LOG))
    await _assert_refused(reader, lambda ch: ch.queue_delete(EVENT_LOG_NAME))
    await _assert_refused(reader, lambda ch: _bind_log(ch, COMMANDS_EXCHANGE_NAME, "#"))
    await _assert_refused(reader, lambda ch: _unbind_log(ch, EVENTS_EXCHANGE_NAME, EVENT_LOG_BINDING_KEY))
    # (Nobody can purge a stream: RabbitMQ answers NOT_IMPLEMENTED and closes the connection.)
    _, message = command({"forged": True}, user_id=reader.name, owner="1")
    await _refused(reader, "", EVENT_LOG_NAME, message)  # nothing goes into the log but through the exchange
    assert _log_bound()


async def test_a_gateway_runs_with_the_least_privilege_bus_user(stack: object, primary: asyncpg.Connection) -> None:
    """It publishes; the worker, told another gateway user, sees a service, and sends that service no
    outcome on a gateway reply queue (replies go only to the publisher's own: tests/bus/test_replies.py)."""
    login = provision(gateway_user(f"{PREFIX}.gateway"))
    url = f"amqp://{quote(login.name, safe='')}:{quote(login.password, safe='')}@127.0.0.1:5672/{VHOST}"
    with Gateway(env={"RABBIT_URL": url}) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            body = {"email": f"{uuid.uuid4().hex}@example.org", "password": "long enough password", "full_name": "G"}
            answer = await client.post("/api/v1/users", json=body, headers={"Prefer": "wait=1"})
    assert answer.status_code == 202, answer.text  # published; no outcome came back to this gateway
    outcome = await outcome_of(primary, uuid.UUID(answer.json()["command_id"]))
    assert (outcome["status"], outcome["code"], outcome["actor"]) == ("rejected", "forbidden", f"service:{login.name}")


def test_a_worker_starts_and_subscribes_with_the_least_privilege_bus_user(stack: object) -> None:
    """It declares the topology and subscribes to every partition (a standby beside the stack's worker)."""
    login = provision(worker_user(f"{PREFIX}.worker"))
    url = f"amqp://{quote(login.name, safe='')}:{quote(login.password, safe='')}@127.0.0.1:5672/{VHOST}"
    env = {"RABBIT_URL": url, "WORKER_METRICS_PORT": str(free_port()), "WORKER_HEARTBEAT_FILE": f"/tmp/{PREFIX}-w2"}
    worker = Worker(env=env, name="worker-least-privilege")
    partitions = range(int(test_settings.ENV["COMMAND_PARTITIONS"]))
    with worker:
        wait_until(
            lambda: all(queue_info(partition_queue_name(p)).get("consumers", 0) >= 2 for p in partitions),
            30,
            "the second worker's consumers",
        )
        assert worker.process is not None
        assert worker.process.poll() is None
    assert "ACCESS_REFUSED" not in worker.log_path.read_text()
