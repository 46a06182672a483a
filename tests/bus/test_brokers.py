"""Several broker addresses: connections go to the first that answers and move on when theirs dies.

Two TCP proxies in front of the one broker stand for two nodes of a cluster: cutting one is its node dying.
"""

import asyncio
import uuid
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher

from gateway.infrastructure.bus import CommandBus
from shared.brokers import Brokers, NoBroker, amqp_connect, broker_urls, connect_first
from shared.contracts.commands import CommandName
from shared.contracts.outcomes import Outcome, OutcomeCode
from shared.models import CommandStatus
from shared.publishing import DEFAULT_EXCHANGE, NotConfirmed, Publisher
from shared.topology import declare_queue, gateway_reply_queue
from tests import settings as test_settings
from tests.support.api import PASSWORD, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker, free_port
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.rabbit
RABBIT_PORT = test_settings.RABBIT_PORTS[0]


def _via(port: int) -> str:
    return test_settings.RABBIT_URL.replace(f":{RABBIT_PORT}/", f":{port}/")


def test_failover_hosts_keep_the_user_vhost_and_tls_of_rabbit_url() -> None:
    urls = broker_urls("amqps://gw:p%40ss@n1:5671/ogf?cafile=/ca.pem", " n2:5671, n3:5671 ,")
    assert urls == [
        "amqps://gw:p%40ss@n1:5671/ogf?cafile=/ca.pem",
        "amqps://gw:p%40ss@n2:5671/ogf?cafile=/ca.pem",
        "amqps://gw:p%40ss@n3:5671/ogf?cafile=/ca.pem",
    ]
    assert broker_urls("amqp://n1/", "") == ["amqp://n1/"]


async def test_a_connection_skips_a_dead_broker_and_fails_only_when_none_answers(vhost: str) -> None:
    dead, alive = _via(free_port()), test_settings.RABBIT_URL
    brokers = Brokers([dead, alive])
    connection = await brokers.connect(amqp_connect)
    await connection.close()
    assert brokers.current == alive
    with pytest.raises(NoBroker, match="127.0.0.1"):
        await Brokers([dead, _via(free_port())]).connect(amqp_connect)


async def test_a_connection_whose_node_dies_is_closed_at_once(vhost: str) -> None:
    """aio-pika would leave it open in its books, for the collector to close later, outside any loop."""
    with TcpProxy(RABBIT_PORT) as node:
        connection = await amqp_connect(_via(node.port))
        node.cut()
        await eventually(lambda: asyncio.sleep(0, connection.is_closed), bool, 10)


async def _publish_to(publisher: Publisher, queue: str, body: bytes) -> None:
    message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await publisher.publish(message, exchange=DEFAULT_EXCHANGE, routing_key=queue, timeout_s=5)


async def test_the_publisher_moves_to_the_next_broker_when_its_node_dies(vhost: str) -> None:
    queue_name = f"test.brokers.{uuid.uuid4().hex}"
    with TcpProxy(RABBIT_PORT) as first, TcpProxy(RABBIT_PORT) as second:
        publisher = Publisher([_via(first.port), _via(second.port)], "test-brokers", timeout_s=5)
        try:
            await publisher.connect()
            assert publisher.brokers.current == _via(first.port)
            first.cut()  # its node dies: the publisher reconnects to the next one by itself
            where = lambda: asyncio.sleep(0, (publisher.brokers.current, publisher.is_connected))  # noqa: E731
            await eventually(where, lambda now: now == (_via(second.port), True), 10)
            queue = await declare_queue(await (await publisher.connect()).channel(), gateway_reply_queue(queue_name))
            await _publish_to(publisher, queue_name, b"after")
            message = await eventually(lambda: queue.get(fail=False), lambda got: got is not None, 10)
            assert message is not None
            assert message.body == b"after"
            second.cut()  # no broker left: a publish is refused, never left hanging
            with pytest.raises(NotConfirmed):
                await _publish_to(publisher, queue_name, b"no broker")
        finally:
            await publisher.close()


async def test_a_request_whose_reply_queue_died_learns_the_outcome_from_the_status(vhost: str) -> None:
    command_id = uuid.uuid4()
    recorded = Outcome(
        command_id=command_id, name=CommandName.ITEM_CREATE, status=CommandStatus.APPLIED,
        code=OutcomeCode.CREATED, resource_id=1,
    )  # fmt: skip
    asked = asyncio.Event()

    async def status() -> Outcome | None:
        asked.set()
        return recorded

    with TcpProxy(RABBIT_PORT) as first, TcpProxy(RABBIT_PORT) as second:
        publisher = Publisher([_via(first.port), _via(second.port)], "test-brokers-replies", timeout_s=5)
        bus = CommandBus(publisher, 5)
        try:
            await bus.start()
            future = bus.expect(command_id)
            waiting = asyncio.create_task(bus.outcome(future, 10, status))
            await asyncio.sleep(0)  # the request is waiting on its reply queue
            assert not asked.is_set()
            first.cut()  # the reply queue dies with its node; the outcome sent to it is gone
            assert await asyncio.wait_for(waiting, 10) == recorded
            assert asked.is_set()
            reply = aio_pika.Message(recorded.model_dump_json().encode())
            other = bus.expect(recorded.command_id)  # the new reply queue, on the second node, answers again
            await publisher.publish(reply, exchange=DEFAULT_EXCHANGE, routing_key=bus.reply_queue, timeout_s=5)
            assert await asyncio.wait_for(other, 10) == recorded
        finally:
            await publisher.close()


async def test_a_login_whose_rehash_reply_died_learns_the_outcome_from_the_status(
    worker: Worker, primary: asyncpg.Connection, replica: asyncpg.Connection
) -> None:
    """A login that rehashes an old hash waits for that command's outcome; its reply queue dies with
    its node before the reply comes (the reply is lost): the login still learns that the new hash was
    stored, from the command's status, and its token works (one tied to the old hash would not)."""
    with TcpProxy(RABBIT_PORT) as first, TcpProxy(RABBIT_PORT) as second:
        env = {"RABBIT_URL": _via(first.port), "RABBIT_FAILOVER_HOSTS": f"127.0.0.1:{second.port}",
               "PREFER_WAIT_MAX": "30"}  # fmt: skip
        gateway = Gateway(env=env, name="gateway-rehash")
        with gateway:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as http:
                client = await sign_up(http)
                weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
                await primary.execute('UPDATE "user" SET hashed_password = $1 WHERE id = $2', weak, client.id)
                await eventually(lambda: _stored_hash(replica, client.id), lambda seen: seen == weak)
                holder = await asyncpg.connect(test_settings.PRIMARY_DSN)
                try:
                    async with holder.transaction():  # the worker's update of the user waits for this lock
                        await holder.execute('SELECT 1 FROM "user" WHERE id = $1 FOR UPDATE', client.id)
                        second.cut()  # the gateway will have nowhere to reconnect to for a while
                        login = asyncio.create_task(_log_in(http, client.email))
                        await eventually(lambda: _waiting_for_locks(primary), lambda waiting: waiting > 0)
                        first.cut()  # the gateway's node dies with its reply queue
                    # the rehash applies now; its reply goes to a reply queue that no longer exists
                    await _after_the_partition_moved_on(primary, client.id)
                finally:
                    await holder.close()
                first.restore()
                second.restore()
                answer = await asyncio.wait_for(login, 60)
                assert answer.status_code == 200, answer.text
                assert await _stored_hash(primary, client.id) != weak
                token = {"Authorization": f"Bearer {answer.json()['access_token']}"}
                assert (await http.get("/api/v1/users/me", headers=token)).status_code == 200


async def _log_in(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.post("/api/v1/login/access-token", data={"username": email, "password": PASSWORD})


async def _stored_hash(database: asyncpg.Connection, user_id: int) -> str:
    return str(await database.fetchval('SELECT hashed_password FROM "user" WHERE id = $1', user_id))


async def _waiting_for_locks(primary: asyncpg.Connection) -> int:
    return int(
        await primary.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def _after_the_partition_moved_on(primary: asyncpg.Connection, user_id: int) -> None:
    """Return once a later command of the same owner is applied: the worker commits, replies and acks a
    batch before it takes the next, so the rehash's reply has been sent (and dropped) by then."""
    body = {"owner_id": user_id, "title": "after the rehash"}
    message = command_message(body, actor=f"user:{user_id}", owner=str(user_id))
    await publish([("item.create", message)])
    await eventually(
        lambda: primary.fetchval("SELECT status FROM command WHERE command_id = $1", uuid.UUID(message.message_id)),
        lambda status: status == "applied",
    )


async def test_a_failed_connect_leaves_no_connection_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """aio-pika leaves the Connection of a failed connect open (collected later with no loop running,
    it leaves a close() never awaited). Every connection our failover opens and fails is closed."""
    made: list[aio_pika.Connection] = []
    plain_init = aio_pika.Connection.__init__

    def recorded(self: aio_pika.Connection, *args: Any, **kwargs: Any) -> None:
        plain_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(aio_pika.Connection, "__init__", recorded)
    with TcpProxy(RABBIT_PORT) as node:
        node.cut()  # accepts, then drops the connection: the AMQP handshake fails
        with pytest.raises(NoBroker):
            await connect_first([_via(node.port), _via(free_port())])
        publisher = Publisher(_via(node.port), "test-failed-connect", timeout_s=5)
        with pytest.raises(NotConfirmed):
            await _publish_to(publisher, "nowhere", b"x")
        await publisher.close()
    assert len(made) == 3
    assert [connection.is_closed for connection in made] == [True] * 3
