"""Several broker addresses: connections go to the first that answers and move on when theirs dies.

Two TCP proxies in front of the one broker stand for two nodes of a cluster: cutting one is its node dying.
"""

import asyncio
import uuid

import aio_pika
import pytest

from gateway.infrastructure.bus import CommandBus
from shared.brokers import Brokers, NoBroker, broker_urls
from shared.contracts.commands import CommandName
from shared.contracts.outcomes import Outcome, OutcomeCode
from shared.models import CommandStatus
from shared.publishing import DEFAULT_EXCHANGE, NotConfirmed, Publisher
from shared.topology import declare_queue, gateway_reply_queue
from tests import settings as test_settings
from tests.support.polling import eventually
from tests.support.processes import free_port
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
    connection = await brokers.connect(aio_pika.connect)
    await connection.close()
    assert brokers.current == alive
    with pytest.raises(NoBroker, match="127.0.0.1"):
        await Brokers([dead, _via(free_port())]).connect(aio_pika.connect)


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
