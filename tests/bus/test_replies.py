"""Replies go only where they may: to a reply queue of the command's publisher, nowhere else."""

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractQueue
from aiormq.exceptions import ChannelAccessRefused

from cli.bus import service_user
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.settings import ServiceGrant
from shared.topology import DEAD_LETTER_QUEUE_NAME, GATEWAY_REPLY_PREFIX, partition_queue_name, service_reply_prefix
from tests import settings as test_settings
from tests.ops.test_metrics import scrape, value, worker_url
from tests.security.helpers import BusLogin, command, connect_as, peek_queue, provision, publish_as
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker
from worker.outbound import may_reply_to

pytestmark = pytest.mark.rabbit
ATTACKER, VICTIM = test_settings.SERVICE_LIMITED, test_settings.SERVICE_WRITER
EXPIRES = {"x-expires": 600_000}  # should a test stop before deleting its queues


def _login(name: str) -> BusLogin:
    return provision(service_user(name, ServiceGrant.model_validate(test_settings.SERVICE_GRANTS[name])))


def test_the_rule() -> None:
    """The gateway's queues for the gateway's commands; `<user>.replies.<anything>` for each user's own."""
    gateway_queue = f"{GATEWAY_REPLY_PREFIX}{uuid.uuid4().hex}"
    assert may_reply_to(gateway_queue, "gw", "gw")
    assert not may_reply_to(gateway_queue, "svc", "gw")
    assert not may_reply_to(f"{GATEWAY_REPLY_PREFIX}not-hex", "gw", "gw")
    assert may_reply_to("svc.replies.mine", "svc", "gw")
    assert may_reply_to("gw.replies.x", "gw", "gw")
    for refused in ("svc.replies.", "svc.repliesx", "other.replies.x", "svc", partition_queue_name(0), "amq.gen-x"):
        assert not may_reply_to(refused, "svc", "gw"), refused
    assert not may_reply_to("unknown.replies.x", None, "gw")  # no validated user_id: no reply at all


async def _declare(login: BusLogin | None, name: str, bind_to_events: str | None = None) -> None:
    """A queue declared by `login` (None: the administrator) that outlives the connection, for the test to inspect."""
    connection = await (connect_as(login) if login else aio_pika.connect(test_settings.RABBIT_URL))
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, arguments=EXPIRES)
        if bind_to_events:
            await queue.bind(EVENTS_EXCHANGE_NAME, routing_key=bind_to_events)


async def _delete(*names: str) -> None:
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


async def _drain(login: BusLogin, name: str) -> list[dict[str, object]]:
    connection = await connect_as(login)
    async with connection:
        channel = await connection.channel()
        queue: AbstractQueue = await channel.declare_queue(name, passive=True)
        bodies = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            bodies.append(json.loads(message.body))
        return bodies


async def test_a_service_gets_outcomes_on_its_own_reply_queue_and_cannot_reply_anywhere_else(
    stack: tuple[Worker, Gateway],
) -> None:
    attacker, victim = _login(ATTACKER), _login(VICTIM)
    own = f"{service_reply_prefix(ATTACKER)}{uuid.uuid4().hex}"
    others = f"{service_reply_prefix(VICTIM)}{uuid.uuid4().hex}"
    events_queue = f"{test_settings.VHOST}.test-events.{uuid.uuid4().hex}"
    gateways = f"{GATEWAY_REPLY_PREFIX}{uuid.uuid4().hex}"
    partition = partition_queue_name(0)
    refused_before = value(await scrape(worker_url()), "opengovfood_replies_refused_total", command="item.create")
    try:
        await _declare(attacker, own)
        await _declare(victim, others)
        await _declare(None, events_queue, bind_to_events="never.emitted")
        await _declare(None, gateways)
        targets = [partition, events_queue, others, gateways, own]  # the last one is allowed: it ends the run
        sent: dict[str, uuid.UUID] = {}
        for target in targets:
            body = {"owner_id": test_settings.UNGRANTED_OWNER, "title": "where does my outcome go"}
            command_id, message = command(body, user_id=ATTACKER, owner=str(test_settings.UNGRANTED_OWNER))
            message.reply_to = target
            await publish_as(attacker, "item.create", message)
            sent[target] = command_id

        async def own_outcomes() -> list[dict[str, object]]:
            return await _drain(attacker, own)

        [outcome] = await eventually(own_outcomes, lambda found: len(found) > 0)
        assert (outcome["command_id"], outcome["status"], outcome["code"]) == (str(sent[own]), "rejected", "not_found")
        # One channel, in order: every earlier reply would have been routed before this one.
        assert await _drain(victim, others) == []
        assert peek_queue(events_queue) == []
        assert peek_queue(gateways) == []
        dead_letters = await _after_partition_settled(partition)
        ours = {str(command_id) for command_id in sent.values()}
        assert [m for m in dead_letters if m["properties"].get("correlation_id") in ours] == []  # a reply put in
        # the partition queue would have been consumed by the worker as a (poison) command and dead-lettered

        refused = value(await scrape(worker_url()), "opengovfood_replies_refused_total", command="item.create")
        assert refused - refused_before == 4
        log = stack[0].log_path.read_text()
        for target in targets[:-1]:
            assert any("reply refused" in line and str(sent[target]) in line for line in log.splitlines()), target
    finally:
        await _delete(own, others, events_queue, gateways)


async def _dead_letters() -> list[dict[str, Any]]:
    return await asyncio.to_thread(peek_queue, DEAD_LETTER_QUEUE_NAME)


async def _after_partition_settled(partition: str) -> list[dict[str, Any]]:
    """The dead letters once the worker has consumed all that was in `partition`: a marker put behind it
    (a poison message) is dead-lettered."""
    marker = str(uuid.uuid4())
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"{}", message_id=marker), routing_key=partition)

    def has_marker(letters: list[dict[str, Any]]) -> bool:
        return any(letter["properties"].get("message_id") == marker for letter in letters)

    return await eventually(_dead_letters, has_marker)


async def test_a_service_may_declare_and_read_its_own_reply_queues_only(stack: tuple[Worker, Gateway]) -> None:
    attacker, victim = _login(ATTACKER), _login(VICTIM)
    others, own = (f"{service_reply_prefix(user)}{uuid.uuid4().hex}" for user in (VICTIM, ATTACKER))
    try:
        await _declare(victim, others)
        await _declare(attacker, own)
        for name in (others, f"{GATEWAY_REPLY_PREFIX}{uuid.uuid4().hex}", f"{ATTACKER}.other.{uuid.uuid4().hex}"):
            with pytest.raises(ChannelAccessRefused):
                await _declare(attacker, name)
        with pytest.raises(ChannelAccessRefused):
            await _drain(attacker, others)
    finally:
        await _delete(own, others)
