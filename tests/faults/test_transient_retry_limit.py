"""The database away for longer than WORKER_TRANSIENT_RETRY_LIMIT_S: the worker stops retrying and
dead-letters the command with its reason; its waiting caller is told, and a replay applies it once."""

import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest

from shared.topology import DEAD_LETTER_QUEUE_NAME
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.security.helpers import peek_queue
from tests.support.api import WAIT, Client, sign_up
from tests.support.polling import eventually
from tests.support.processes import Worker
from tests.support.proxy import TcpProxy

RETRY_LIMIT_S = 2  # the default is 600 s


@pytest.fixture
def database_path(worker: Worker) -> Iterator[TcpProxy]:
    """The test stack's worker, replaced for this test by one that reaches PostgreSQL through a
    proxy and gives up on the database after RETRY_LIMIT_S."""
    worker.stop()
    with TcpProxy(test_settings.PRIMARY_PORT) as proxy:
        url = test_settings.WORKER_DATABASE_URL.replace(f":{test_settings.PRIMARY_PORT}/", f":{proxy.port}/")
        env = {"DATABASE_URL": url, "WORKER_TRANSIENT_RETRY_LIMIT_S": str(RETRY_LIMIT_S)}
        with Worker(env=env, name="worker-retry-limit"):
            yield proxy
    worker.start()


async def _dead_letter(command_id: str) -> dict[str, Any] | None:
    letters = peek_queue(DEAD_LETTER_QUEUE_NAME)
    return next((m for m in letters if m["properties"].get("message_id") == command_id), None)


async def _command(http: httpx.AsyncClient, client: Client, command_id: str) -> dict[str, Any]:
    return dict((await http.get(f"/api/v1/commands/{command_id}", headers=client.headers)).json())


async def test_past_the_retry_limit_commands_are_dead_lettered_and_a_replay_applies_them_once(
    http: httpx.AsyncClient, primary: asyncpg.Connection, database_path: TcpProxy
) -> None:
    client = await sign_up(http)
    first, second = (f"outlasted {n} {uuid.uuid4().hex}" for n in range(2))
    database_path.cut()
    command_ids = []
    for title in (first, second):  # the second finds the relay unflushed (the first may have committed unseen)
        answer = await http.post("/api/v1/items", json={"title": title}, headers={**client.headers, **WAIT})
        assert answer.status_code == 503, answer.text  # the caller who waits gets the dead_lettered outcome
        assert f"unavailable for over {RETRY_LIMIT_S} s" in answer.json()["detail"]
        command_ids.append(answer.json()["command_id"])
    for command_id in command_ids:
        letter = await eventually(partial(_dead_letter, command_id), lambda found: found is not None)
        assert letter is not None
        assert "Connection" in letter["properties"]["headers"]["x-death-reason"]  # the driver's error, for operators

    database_path.restore()
    ids = [uuid.UUID(command_id) for command_id in command_ids]
    for command_id in command_ids:
        assert (await _command(http, client, command_id))["status"] == "pending"
    # The database was away when the worker gave up: no outcome could be recorded, and none is later.
    assert await primary.fetchval("SELECT count(*) FROM command WHERE command_id = ANY($1)", ids) == 0
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title = ANY($1)", [first, second]) == 0

    opengovfood("deadletters", "replay", *command_ids)
    for command_id in command_ids:
        applied = lambda seen: seen["status"] == "applied"  # noqa: E731
        outcome = await eventually(partial(_command, http, client, command_id), applied)
        assert outcome["resource_id"] is not None
        assert await _dead_letter(command_id) is None
    for title in (first, second):
        assert await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", title) == 1
