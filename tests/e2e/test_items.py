"""Items end to end: writes become commands, reads come from the replica."""

import asyncpg
import httpx
import pytest

from tests.support.api import WAIT, Client, create_item, sign_up
from tests.support.tap import tap_commands


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Client:
    return await sign_up(http)


async def test_create_read_update_delete(http: httpx.AsyncClient, alice: Client) -> None:
    created = await create_item(http, alice, title="Buy flour", description="2 kg")
    assert created.status_code == 201
    item = created.json()
    assert isinstance(item["id"], int)
    assert created.headers["Location"] == f"/api/v1/items/{item['id']}"
    token = {"X-Consistency-Token": created.headers["X-Consistency-Token"]}

    read = await http.get(f"/api/v1/items/{item['id']}", headers={**alice.headers, **token})
    assert read.status_code == 200
    assert read.headers["X-Served-By"] == "replica"
    assert read.json()["title"] == "Buy flour"

    updated = await http.patch(
        f"/api/v1/items/{item['id']}", json={"status": "completed"}, headers={**alice.headers, **WAIT}
    )
    assert updated.status_code == 200
    assert updated.json() | {"updated_at": None} == item | {"status": "completed", "updated_at": None}

    deleted = await http.delete(f"/api/v1/items/{item['id']}", headers={**alice.headers, **WAIT})
    assert deleted.status_code == 204
    token = {"X-Consistency-Token": deleted.headers["X-Consistency-Token"]}
    gone = await http.get(f"/api/v1/items/{item['id']}", headers={**alice.headers, **token})
    assert gone.status_code == 404


async def test_list_is_the_callers_newest_first_with_count_and_filter(http: httpx.AsyncClient, alice: Client) -> None:
    for title, status in (("a", "pending"), ("b", "completed"), ("c", "pending")):
        last = await create_item(http, alice, title=title, status=status)
    token = {"X-Consistency-Token": last.headers["X-Consistency-Token"]}
    page = (await http.get("/api/v1/items", headers={**alice.headers, **token})).json()
    assert [i["title"] for i in page["data"]] == ["c", "b", "a"]
    assert page["count"] == 3
    pending = await http.get("/api/v1/items?status=pending&limit=1&skip=1", headers={**alice.headers, **token})
    assert [i["title"] for i in pending.json()["data"]] == ["a"]
    assert pending.json()["count"] == 2
    assert (await http.get("/api/v1/items?limit=101", headers=alice.headers)).status_code == 422


async def test_update_right_after_create_while_replay_is_paused_is_accepted(
    http: httpx.AsyncClient, alice: Client, replica: asyncpg.Connection
) -> None:
    await replica.execute("SELECT pg_wal_replay_pause()")
    try:
        created = await create_item(http, alice, title="fresh")
        assert created.status_code == 201
        item_id = created.json()["id"]
        # No token: the replica misses the item, the gateway checks the primary before saying 404.
        update = await http.patch(f"/api/v1/items/{item_id}", json={"title": "changed"}, headers=alice.headers)
        assert update.status_code == 202
    finally:
        await replica.execute("SELECT pg_wal_replay_resume()")


async def test_a_user_cannot_touch_another_users_item_and_nothing_is_published(
    http: httpx.AsyncClient, alice: Client
) -> None:
    bob = await sign_up(http)
    item_id = (await create_item(http, bob, title="bob's")).json()["id"]
    async with tap_commands() as tap:
        assert (await http.get(f"/api/v1/items/{item_id}", headers=alice.headers)).status_code == 404
        patch = await http.patch(f"/api/v1/items/{item_id}", json={"title": "mine"}, headers=alice.headers)
        assert patch.status_code == 404
        assert (await http.delete(f"/api/v1/items/{item_id}", headers=alice.headers)).status_code == 404
        listed = await http.get("/api/v1/items", headers=alice.headers)
        assert item_id not in [i["id"] for i in listed.json()["data"]]
        assert await tap.count() == 0
        assert (await create_item(http, alice, title="own")).status_code == 201
        assert await tap.count() == 1  # the tap does see what is published


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "blank"),
        ({"title": "x" * 101}, "title"),
        ({"title": "ok", "status": "done"}, "status"),
        ({"title": "ok", "owner_id": 1}, "owner_id"),
        ({"title": 12}, "title"),
        ({"title": "ok", "description": ["not", "text"]}, "description"),
        ({}, "title"),
    ],
)
async def test_bad_item_bodies_are_422_with_a_reason_and_nothing_is_published(
    http: httpx.AsyncClient, alice: Client, body: dict[str, object], reason: str
) -> None:
    async with tap_commands() as tap:
        response = await http.post("/api/v1/items", json=body, headers=alice.headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert reason in response.json()["detail"]
        assert await tap.count() == 0


async def test_malformed_json_is_422_and_nothing_is_published(http: httpx.AsyncClient, alice: Client) -> None:
    async with tap_commands() as tap:
        response = await http.post(
            "/api/v1/items",
            content=b'{"title": "x"',
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert "JSON" in response.json()["detail"]
        assert await tap.count() == 0
