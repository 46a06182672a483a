"""Broken object-level authorization: another user's objects are 404 and nothing is published."""

import uuid

import asyncpg
import httpx

from tests.security.helpers import outcome_of, tap_everything
from tests.support.api import WAIT, create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually

ITEMS = 40


async def test_200_cross_user_reads_updates_and_deletes_are_all_404_and_publish_nothing(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    alice, bob = await sign_up(http), await sign_up(http)
    bobs_items, bobs_commands = [], []
    for i in range(ITEMS):
        created = await create_item(http, bob, title=f"bob {i}")
        assert created.status_code == 201
        bobs_items.append(created.json()["id"])
    for i in range(ITEMS):  # Bob's commands, left pending or applied: still his
        accepted = await http.post("/api/v1/items", json={"title": f"c {i}"}, headers=bob.headers)
        bobs_commands.append(accepted.json()["command_id"])
    for command_id in bobs_commands:  # recorded and replicated: a command not yet recorded shows as pending
        await eventually(
            lambda c=command_id: http.get(f"/api/v1/commands/{c}", headers=bob.headers),
            lambda answer: answer.json().get("status") == "applied",
        )
    before = await primary.fetch("SELECT id, title, status FROM item WHERE owner_id = $1 ORDER BY id", bob.id)
    statuses = []
    async with tap_everything() as tap:
        for item_id in bobs_items:
            statuses.append((await http.get(f"/api/v1/items/{item_id}", headers=alice.headers)).status_code)
            patch = await http.patch(
                f"/api/v1/items/{item_id}", json={"title": "mine now"}, headers={**alice.headers, **WAIT}
            )
            statuses.append(patch.status_code)
            delete = await http.delete(f"/api/v1/items/{item_id}", headers={**alice.headers, **WAIT})
            statuses.append(delete.status_code)
        for command_id in bobs_commands:
            statuses.append((await http.get(f"/api/v1/commands/{command_id}", headers=alice.headers)).status_code)
        for _ in range(ITEMS):
            statuses.append((await http.get(f"/api/v1/users/{bob.id}", headers=alice.headers)).status_code)
        assert await tap.count() == 0
    assert len(statuses) >= 200
    assert set(statuses) == {404}, statuses
    after = await primary.fetch("SELECT id, title, status FROM item WHERE owner_id = $1 ORDER BY id", bob.id)
    assert [tuple(r) for r in after if r["id"] in bobs_items] == [tuple(r) for r in before if r["id"] in bobs_items]


async def test_the_worker_also_refuses_a_user_acting_on_anothers_item(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """Defence in depth: even a command that got past the gateway is checked again by the worker."""
    alice, bob = await sign_up(http), await sign_up(http)
    item_id = (await create_item(http, bob, title="bob's")).json()["id"]
    command_id = uuid.uuid4()
    message = command_message(
        {"item_id": item_id, "title": "stolen"}, actor=f"user:{alice.id}", owner=str(alice.id), command_id=command_id
    )
    await publish([("item.update", message)])
    outcome = await outcome_of(primary, command_id)
    assert (outcome["status"], outcome["code"]) == ("rejected", "not_found")
    assert await primary.fetchval("SELECT title FROM item WHERE id = $1", item_id) == "bob's"
