"""A replayed dead letter is applied at its replay: after its owner's later commands, which the
dead letter did not hold back. What it changes is what the item ends up with."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.ops.cli import opengovfood
from tests.support.api import WAIT, Client, create_item, sign_up
from tests.support.database import WORKER_ROLE, worker_lacks
from tests.support.events import tap_events
from tests.support.polling import eventually


@pytest.fixture
async def updates_refused(primary: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    async with worker_lacks(primary, "UPDATE", "item") as conn:
        yield conn


async def _rename(http: httpx.AsyncClient, client: Client, item_id: int, title: str) -> httpx.Response:
    return await http.patch(f"/api/v1/items/{item_id}", json={"title": title}, headers={**client.headers, **WAIT})


async def _command(http: httpx.AsyncClient, client: Client, command_id: str) -> dict[str, Any]:
    return dict((await http.get(f"/api/v1/commands/{command_id}", headers=client.headers)).json())


async def test_a_replayed_command_is_applied_after_its_owners_later_commands(
    http: httpx.AsyncClient, updates_refused: asyncpg.Connection
) -> None:
    primary = updates_refused
    client = await sign_up(http)
    created = await create_item(http, client, title="first")
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    run = uuid.uuid4().hex[:8]
    parked_title, later_title = f"{run} parked", f"{run} later"

    async with tap_events() as tap:
        parked = await _rename(http, client, item_id, parked_title)
        assert parked.status_code == 503, parked.text  # dead-lettered: the worker may not UPDATE item
        parked_id = parked.json()["command_id"]
        await primary.execute(f"GRANT UPDATE ON item TO {WORKER_ROLE}")
        later = await _rename(http, client, item_id, later_title)
        assert later.status_code == 200, later.text  # the owner's next command was not held back

        opengovfood("deadletters", "replay", parked_id)
        await eventually(lambda: _command(http, client, parked_id), lambda seen: seen["status"] == "applied")
        events = await eventually(
            tap.drain, lambda seen: parked_id in {e["command_id"] for e in seen if e["resource_id"] == item_id}
        )

    renames = [(e["command_id"], e["data"]["title"]) for e in events if e["resource_id"] == item_id]
    first_seen = list(dict.fromkeys(renames))  # at least once: a repeat is allowed, an overtaking is not
    assert [title for _, title in first_seen] == [later_title, parked_title]  # the replay comes after the later one
    later_id = first_seen[0][0]
    assert first_seen[1][0] == parked_id
    assert await primary.fetchval("SELECT title FROM item WHERE id = $1", item_id) == parked_title
    applied = await primary.fetch(
        "SELECT command_id FROM command WHERE command_id = ANY($1) ORDER BY applied_at",
        [uuid.UUID(later_id), uuid.UUID(parked_id)],
    )
    assert [str(row["command_id"]) for row in applied] == [later_id, parked_id]
