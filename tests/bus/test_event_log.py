"""The event log against the real broker, read as a provisioned reader: every event, in commit order,
from a timestamp or from any offset."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from cli.bus import reader_user
from shared.event_log import LogEntry, read_log
from tests import settings as test_settings
from tests.security.helpers import BusLogin, connect_as, provision
from tests.support.api import create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker

pytestmark = pytest.mark.rabbit
UPDATES = 300
IDLE_S = 1.0  # the end of the log, for a reader: nothing more delivered for this long


@pytest.fixture(scope="module")
def reader(stack: object) -> BusLogin:
    return provision(reader_user(f"{test_settings.VHOST}.log-reader"))


async def read_as(login: BusLogin, start: str | int | datetime) -> list[LogEntry]:
    connection = await connect_as(login)
    async with connection:
        channel = await connection.channel()
        return [entry async for entry in read_log(channel, start, IDLE_S)]


async def all_relayed(primary: asyncpg.Connection, command_ids: list[uuid.UUID]) -> None:
    """Every event of these commands was confirmed by the broker (and marked so in the outbox)."""
    query = "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox WHERE command_id = ANY($1)"
    await eventually(lambda: primary.fetchrow(query, command_ids), lambda row: row[0] == 0 and row[1] > 0, 60)


def events(entries: list[LogEntry]) -> list[dict[str, Any]]:
    return [json.loads(entry.body) for entry in entries]


@pytest.fixture(scope="module")
async def updated_item(stack: tuple[Worker, Gateway]) -> tuple[int, datetime, list[uuid.UUID]]:
    """An item created over HTTP, then UPDATES item.update commands on the bus, in order: (item id, a
    moment before any of its events, the update command ids in publishing order)."""
    before = datetime.now(UTC) - timedelta(seconds=1)  # timestamps count to the second
    async with httpx.AsyncClient(base_url=stack[1].url, timeout=30) as http:
        owner = await sign_up(http)
        created = await create_item(http, owner, title="t-created")
    assert created.status_code == 201, created.text
    item_id = int(created.json()["id"])
    command_ids = [uuid.uuid4() for _ in range(UPDATES)]
    await publish([
        ("item.update", command_message({"item_id": item_id, "title": f"t{n}"}, actor=f"user:{owner.id}",
                                        owner=str(owner.id), command_id=command_id))
        for n, command_id in enumerate(command_ids)
    ])  # fmt: skip
    return item_id, before, command_ids


async def test_the_log_holds_every_event_of_an_item_in_commit_order(
    reader: BusLogin, updated_item: tuple[int, datetime, list[uuid.UUID]], primary: asyncpg.Connection
) -> None:
    item_id, before, command_ids = updated_item
    await all_relayed(primary, command_ids)
    logged = [
        event for event in events(await read_as(reader, before))
        if event["resource_id"] == item_id and event["name"].startswith("item.")
    ]  # fmt: skip
    assert [event["name"] for event in logged] == ["item.created"] + ["item.updated"] * UPDATES
    assert [event["data"]["title"] for event in logged] == ["t-created"] + [f"t{n}" for n in range(UPDATES)]
    assert [uuid.UUID(event["command_id"]) for event in logged[1:]] == command_ids
    outbox = await primary.fetch(
        "SELECT payload->>'event_id' AS event_id FROM outbox WHERE command_id = ANY($1) ORDER BY id", command_ids
    )
    assert [event["event_id"] for event in logged[1:]] == [row["event_id"] for row in outbox]


async def test_a_reader_resumes_at_the_offset_after_the_last_it_handled(
    reader: BusLogin, updated_item: tuple[int, datetime, list[uuid.UUID]], primary: asyncpg.Connection
) -> None:
    _, before, command_ids = updated_item
    await all_relayed(primary, command_ids)
    everything = await read_as(reader, before)
    offsets = [entry.offset for entry in everything]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))  # one after the other, none skipped
    middle = len(everything) // 2
    resumed = await read_as(reader, everything[middle].offset + 1)
    rest = everything[middle + 1 :]
    assert [(entry.offset, entry.body) for entry in resumed[: len(rest)]] == [(e.offset, e.body) for e in rest]
