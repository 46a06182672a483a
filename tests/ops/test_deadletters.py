"""`opengovfood deadletters list|replay` against the real broker and worker."""

import json
import uuid

import aio_pika
import asyncpg
import pytest

from shared.topology import DEAD_LETTER_EXCHANGE_NAME
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.support.api import unique_email
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker, free_port

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"


async def listed() -> dict[str, dict[str, object]]:
    out = opengovfood("deadletters", "list", "--json").stdout
    return {letter["id"]: letter for letter in map(json.loads, out.splitlines())}


async def park(routing_key: str, message: aio_pika.Message) -> None:
    """Put a message in the dead-letter queue as the worker would have."""
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(DEAD_LETTER_EXCHANGE_NAME)
        message.headers.update({"x-death-reason": "parked by a test", "x-original-routing-key": routing_key})
        await exchange.publish(message, routing_key=routing_key)


@pytest.mark.rabbit
async def test_list_shows_the_reason_and_replay_applies_a_parked_command(
    stack: tuple[Worker, Gateway], primary: asyncpg.Connection
) -> None:
    poison_id = uuid.uuid4()
    await publish([("item.create", command_message(b"{not json", actor="user:1", owner="1", command_id=poison_id))])
    letters = await eventually(listed, lambda letters: str(poison_id) in letters, deadline_s=10)
    poison = letters[str(poison_id)]
    assert poison["routing_key"] == "item.create"
    assert "invalid item.create body" in str(poison["reason"])

    email, valid_id = unique_email("replay"), uuid.uuid4()
    body = {"email": email, "hashed_password": HASH, "full_name": "Replayed"}
    await park("user.create", command_message(body, actor="anonymous", owner=email, command_id=valid_id))
    letters = await eventually(listed, lambda letters: str(valid_id) in letters, deadline_s=10)
    assert letters[str(valid_id)]["reason"] == "parked by a test"

    assert f"replayed {valid_id}" in opengovfood("deadletters", "replay", str(valid_id)).stdout

    async def status() -> str | None:
        return await primary.fetchval("SELECT status FROM command WHERE command_id = $1", valid_id)

    assert await eventually(status, lambda value: value is not None, deadline_s=10) == "applied"
    assert await primary.fetchval('SELECT full_name FROM "user" WHERE email = $1', email) == "Replayed"
    letters = await listed()
    assert str(valid_id) not in letters
    assert str(poison_id) in letters  # the others stay where they were
    assert opengovfood("deadletters", "replay", str(valid_id), check=False).returncode == 1  # gone now


@pytest.mark.rabbit
async def test_operator_commands_take_the_next_broker_when_the_first_is_down(stack: tuple[Worker, Gateway]) -> None:
    """RABBIT_URL names a node that is down: `deadletters` and `events tail` use RABBIT_FAILOVER_HOSTS."""
    port = test_settings.RABBIT_PORTS[0]
    env = {
        "RABBIT_URL": test_settings.RABBIT_URL.replace(f":{port}/", f":{free_port()}/"),
        "RABBIT_FAILOVER_HOSTS": f"127.0.0.1:{port}",
    }
    listed = opengovfood("deadletters", "list", env=env)
    assert "dead letter(s)" in listed.stdout
    tailed = opengovfood("events", "tail", "--from", "last", "--idle", "0.5", env=env)
    assert tailed.returncode == 0
    alone = opengovfood("deadletters", "list", env={**env, "RABBIT_FAILOVER_HOSTS": ""}, check=False)
    assert alone.returncode != 0  # the one broker named is down
