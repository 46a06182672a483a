"""Text PostgreSQL cannot store (NUL, unpaired surrogates) is a 422 naming the field; nothing is published."""

import json
from urllib.parse import quote

import httpx
import pytest

from tests.support.api import Client, create_item, sign_up, unique_email
from tests.support.tap import tap_commands

JSON = {"Content-Type": "application/json"}
# A lone surrogate three ways: as a JSON escape, as the raw bytes of its UTF-16 code (not UTF-8,
# but Python's json decodes them), and as pydantic would see it after either.
ESCAPED = '"a\\ud800b"'
RAW = b'"a\xed\xa0\x80b"'


def _body(template: str, value: str | bytes) -> bytes:
    """A JSON body with `value` (already JSON text, or raw bytes) where the template says VALUE."""
    raw = value if isinstance(value, bytes) else value.encode()
    return template.encode().replace(b"VALUE", raw)


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Client:
    return await sign_up(http)


NUL = json.dumps("a\u0000b")
HOSTILE = [pytest.param(NUL, id="nul"), pytest.param(ESCAPED, id="escaped-surrogate"), pytest.param(RAW, id="raw")]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    ("method", "path", "template", "field"),
    [
        ("POST", "/api/v1/items", '{"title": VALUE}', "title"),
        ("POST", "/api/v1/items", '{"title": "ok", "description": VALUE}', "description"),
        ("PATCH", "/api/v1/items/ITEM", '{"title": VALUE}', "title"),
        ("PATCH", "/api/v1/users/me", '{"full_name": VALUE}', "full_name"),
        ("POST", "/api/v1/users", '{"email": "EMAIL", "password": "long enough", "full_name": VALUE}', "full_name"),
        ("POST", "/api/v1/users", '{"email": "EMAIL", "password": VALUE, "full_name": "Ann"}', "password"),
        ("POST", "/api/v1/users", '{"email": VALUE, "password": "long enough", "full_name": "Ann"}', "email"),
        ("POST", "/api/v1/items", '{"title": "ok", VALUE: 1}', "body"),  # an unknown key, refused by name
    ],
)
async def test_hostile_text_in_a_body_is_422_naming_the_field_and_nothing_is_published(
    http: httpx.AsyncClient, alice: Client, method: str, path: str, template: str, field: str, value: str | bytes
) -> None:
    item = await create_item(http, alice, title="target")
    path = path.replace("ITEM", str(item.json()["id"]))
    body = _body(template.replace("EMAIL", unique_email()), value)
    async with tap_commands() as tap:
        response = await http.request(method, path, content=body, headers={**alice.headers, **JSON})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert field in response.json()["detail"]
        assert await tap.count() == 0


async def test_a_body_that_is_not_utf8_is_422(http: httpx.AsyncClient, alice: Client) -> None:
    async with tap_commands() as tap:
        response = await http.post("/api/v1/items", content=b'{"title": "\xff"}', headers={**alice.headers, **JSON})
        assert response.status_code == 422
        assert response.json()["detail"] == "body: not UTF-8 text"
        assert await tap.count() == 0


@pytest.mark.parametrize("query", ["q=a%00b", "cursor=%00"])  # bytes that are not UTF-8 decode to U+FFFD
async def test_hostile_text_in_a_query_is_422(http: httpx.AsyncClient, alice: Client, query: str) -> None:
    response = await http.get(f"/api/v1/items?{query}", headers=alice.headers)
    assert response.status_code == 422, response.text
    assert query.split("=")[0] in response.json()["detail"]


async def test_hostile_text_in_the_login_form_is_422(http: httpx.AsyncClient) -> None:
    form = "username=" + quote("a\x00@example.org") + "&password=whatever"
    response = await http.post(
        "/api/v1/login/access-token", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 422, response.text
    assert "username" in response.json()["detail"]
