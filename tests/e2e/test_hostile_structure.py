"""JSON bodies built to break a parser (nested far deeper than it goes, numbers far larger than any
field holds, the same key twice) are a 4xx problem, never a 500, and nothing is published."""

import httpx
import pytest

from tests.support.api import Client, create_item, sign_up
from tests.support.tap import tap_commands

JSON = {"Content-Type": "application/json"}
# Inside the 64 KiB body limit of these routes, far beyond any parser's nesting limit.
DEPTH = 30_000  # 60 KB of brackets
OBJECT_DEPTH = 10_000


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Client:
    return await sign_up(http)


BODIES = [
    pytest.param("[" * DEPTH + "]" * DEPTH, id="deep-array"),
    pytest.param('{"title": ' + "[" * DEPTH + "]" * DEPTH + "}", id="deep-field"),
    pytest.param('{"a": ' * OBJECT_DEPTH + "1" + "}" * OBJECT_DEPTH, id="deep-object"),
    pytest.param('{"title": "ok", "status": ' + "9" * 5_000 + "}", id="huge-integer"),
    pytest.param('{"title": "ok", "status": 1e999999}', id="huge-float"),
    pytest.param('{"title": "ok", "title": ' + "[" * OBJECT_DEPTH + "]" * OBJECT_DEPTH + "}", id="same-key-twice"),
]
ROUTES = [
    ("POST", "/api/v1/items"),
    ("PATCH", "/api/v1/items/ITEM"),
    ("PUT", "/api/v1/users/me/password"),
    ("PATCH", "/api/v1/users/me"),
    ("POST", "/api/v1/users"),
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=lambda value: value.replace("/api/v1/", ""))
async def test_a_body_built_to_break_the_parser_is_a_4xx_and_publishes_nothing(
    http: httpx.AsyncClient, alice: Client, method: str, path: str, body: str
) -> None:
    item = await create_item(http, alice, title="target")
    path = path.replace("ITEM", str(item.json()["id"]))
    async with tap_commands() as tap:
        response = await http.request(method, path, content=body.encode(), headers={**alice.headers, **JSON})
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
        assert response.headers["content-type"] == "application/problem+json"
        assert await tap.count() == 0
    # and the gateway answers the next request as before
    assert (await http.get(f"/api/v1/items/{item.json()['id']}", headers=alice.headers)).status_code == 200
