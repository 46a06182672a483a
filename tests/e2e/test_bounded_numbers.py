"""Numbers out of range in a path, a query or a cursor are 422, never a 500; the bounds are in the OpenAPI."""

import base64
import json
from datetime import datetime

import httpx
import pytest

from gateway.http.pagination import MAX_SKIP, encode_cursor
from tests.support.api import Client, create_item, sign_up
from tests.support.processes import ROOT

MAX_ID = 2**31 - 1


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Client:
    return await sign_up(http)


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/items/99999999999"),
        ("GET", "/api/v1/items/99999999999999999999999"),
        ("GET", "/api/v1/items/0"),
        ("PATCH", "/api/v1/items/99999999999"),
        ("DELETE", "/api/v1/items/99999999999"),
        ("GET", "/api/v1/users/99999999999"),
        ("GET", "/api/v1/items?skip=99999999999999999999"),
        ("GET", f"/api/v1/items?skip={MAX_SKIP + 1}"),
        ("GET", "/api/v1/items?limit=99999999999999999999"),
        ("GET", "/api/v1/users/me/activity?limit=99999999999999999999"),
        ("GET", f"/api/v1/items?cursor={_cursor('2026-01-01T00:00:00+00:00|99999999999')}"),
        ("GET", f"/api/v1/items?cursor={_cursor('2026-01-01T00:00:00+00:00|0')}"),
        ("GET", f"/api/v1/items?cursor={_cursor('2026-01-01T00:00:00|5')}"),  # no zone: not one we gave out
        ("GET", f"/api/v1/items?cursor={_cursor('9' * 5000)}"),
    ],
)
async def test_out_of_range_numbers_are_422(http: httpx.AsyncClient, alice: Client, method: str, path: str) -> None:
    body = {"title": "x"} if method == "PATCH" else None
    response = await http.request(method, path, json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_largest_ids_and_a_real_cursor_are_served(http: httpx.AsyncClient, alice: Client) -> None:
    assert (await http.get(f"/api/v1/items/{MAX_ID}", headers=alice.headers)).status_code == 404
    created = await create_item(http, alice, title="first")
    token = {"X-Consistency-Token": created.headers["X-Consistency-Token"]}
    item = created.json()
    after = encode_cursor(datetime.fromisoformat(item["created_at"]), MAX_ID)
    page = await http.get(f"/api/v1/items?cursor={after}&skip={MAX_SKIP}", headers={**alice.headers, **token})
    assert page.status_code == 200
    assert [row["id"] for row in page.json()["data"]] == [item["id"]]  # same instant, smaller id


def test_the_bounds_are_in_the_openapi_document() -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    parameters = {
        (path, method, parameter["name"]): parameter["schema"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
    }
    for path, method in [("/api/v1/items/{item_id}", "get"), ("/api/v1/items/{item_id}", "patch")]:
        assert parameters[(path, method, "item_id")].items() >= {"minimum": 1, "maximum": MAX_ID}.items()
    assert parameters[("/api/v1/users/{user_id}", "get", "user_id")]["maximum"] == MAX_ID
    assert parameters[("/api/v1/items", "get", "skip")].items() >= {"minimum": 0, "maximum": MAX_SKIP}.items()
    assert parameters[("/api/v1/items", "get", "limit")]["maximum"] == 100
    assert "maxLength" in parameters[("/api/v1/items", "get", "cursor")]


NOT_AN_ID = {
    "superscript two": "%C2%B2",  # str.isdigit() says yes, int() raises
    "5,000 digits": "9" * 5000,  # past what int() reads (4,300 digits)
}


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("segment", NOT_AN_ID.values(), ids=NOT_AN_ID.keys())
async def test_an_id_that_is_no_number_of_ours_is_404(
    http: httpx.AsyncClient, alice: Client, method: str, segment: str
) -> None:
    body = {"title": "x"} if method == "PATCH" else None
    for headers in ({}, alice.headers):  # unauthenticated (the fast path's int() ran first), and as a user
        response = await http.request(method, f"/api/v1/items/{segment}", json=body, headers=headers)
        assert response.status_code == 404, (headers, response.text)
    assert (await http.get(f"/api/v1/users/{'9' * 5000}", headers=alice.headers)).status_code == 404


async def test_an_id_in_other_digits_is_not_that_item(http: httpx.AsyncClient, alice: Client) -> None:
    item_id = (await create_item(http, alice, title="mine")).json()["id"]
    arabic_indic = "".join(chr(0x660 + int(digit)) for digit in str(item_id))  # int() reads them as item_id
    response = await http.get(f"/api/v1/items/{arabic_indic}", headers=alice.headers)
    assert response.status_code == 404, response.text
    assert (await http.get(f"/api/v1/items/{item_id}", headers=alice.headers)).status_code == 200
