"""GET /api/v1/users/me/activity: the caller's own commands, newest first, with what they changed."""

import httpx

from tests.support.api import WAIT, create_item, sign_up
from tests.support.processes import Gateway, Worker


async def test_activity_lists_my_commands_newest_first(http: httpx.AsyncClient, stack: tuple[Worker, Gateway]) -> None:
    me, other = await sign_up(http), await sign_up(http)
    item = (await create_item(http, me, title="first")).json()
    updated = await http.patch(f"/api/v1/items/{item['id']}", json={"title": "second"}, headers={**me.headers, **WAIT})
    assert updated.status_code == 200, updated.text
    deleted = await http.delete(f"/api/v1/items/{item['id']}", headers={**me.headers, **WAIT})
    assert deleted.status_code == 204
    assert (await http.delete("/api/v1/items/2147483000", headers=me.headers)).status_code == 404  # never published
    await create_item(http, other, title="not mine")
    token = {"X-Consistency-Token": deleted.headers["X-Consistency-Token"]}

    response = await http.get("/api/v1/users/me/activity", headers={**me.headers, **token})
    assert response.status_code == 200, response.text
    entries = response.json()["data"]
    assert [(e["name"], e["status"], e["code"]) for e in entries] == [
        ("item.delete", "applied", "deleted"),
        ("item.update", "applied", "updated"),
        ("item.create", "applied", "created"),
    ]
    assert entries[1]["resource_id"] == item["id"]
    assert entries[1]["changes"]["title"] == "second"
    assert entries[2]["changes"]["title"] == "first"
    assert entries[0]["applied_at"] >= entries[1]["applied_at"] >= entries[2]["applied_at"]

    limited = await http.get("/api/v1/users/me/activity", params={"limit": 1}, headers={**me.headers, **token})
    assert [e["name"] for e in limited.json()["data"]] == ["item.delete"]
    too_many = await http.get("/api/v1/users/me/activity", params={"limit": 101}, headers=me.headers)
    assert too_many.status_code == 422
    assert (await http.get("/api/v1/users/me/activity")).status_code == 401
