"""The fast path (gateway/edge/hot.py) answers as the FastAPI routes alone do: the same requests, valid and
hostile, sent to a gateway with it and to one without (FAST_PATH=false), get the same status, body
and headers. The two run the same operations (gateway/operations/): this keeps the adapters honest."""

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from gateway.http.pagination import encode_cursor
from tests.support.api import Client, create_item, sign_up
from tests.support.processes import Gateway

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VOLATILE = {"date", "server", "x-request-id", "x-served-by"}  # x-served-by: which database was ready first
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def fastapi_only(worker) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with Gateway(env={"FAST_PATH": "false"}, name="gateway-fastapi-only") as gateway:
        yield gateway


@pytest.fixture
async def slow(fastapi_only: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fastapi_only.url, timeout=30) as client:
        yield client


def _requests(alice: Client, item: dict[str, Any], token: str) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    auth, item_id = alice.headers, item["id"]
    cursor = encode_cursor(datetime.fromisoformat(item["created_at"]), item_id)
    garbage = base64.urlsafe_b64encode(b"not|a|cursor").decode().rstrip("=")
    seen = {**auth, "X-Consistency-Token": token}
    arabic = "".join(chr(0x660 + int(digit)) for digit in str(item_id))
    reads = [
        f"/api/v1/items/{item_id}", f"/api/v1/items/{2**31 - 1}", "/api/v1/items/0", "/api/v1/items/99999999999",
        "/api/v1/items/%C2%B2", f"/api/v1/items/{arabic}", f"/api/v1/items/{'9' * 5000}", "/api/v1/items/-1",
        "/api/v1/items", "/api/v1/items?limit=1", "/api/v1/items?limit=0", "/api/v1/items?limit=abc",
        "/api/v1/items?limit=%D9%A1", "/api/v1/items?limit=1&limit=2", "/api/v1/items?limit=", "/api/v1/items?q=%00",
        "/api/v1/items?q=%01", "/api/v1/items?q=", "/api/v1/items?q=" + "x" * 101, "/api/v1/items?q=an",
        "/api/v1/items?status=bogus", "/api/v1/items?status=pending", f"/api/v1/items?cursor={cursor}",
        "/api/v1/items?cursor=!!", f"/api/v1/items?cursor={garbage}", "/api/v1/items?cursor=" + "A" * 201,
        "/api/v1/items?skip=99999999999999999999", "/api/v1/items?skip=10001", "/api/v1/items?unknown=1",
        "/api/v1/items?limit=1&skip=0&status=pending&q=an",
    ]  # fmt: skip
    requests: list[tuple[str, str, dict[str, str], bytes | None]] = []
    for path in reads:
        requests += [("GET", path, auth, None), ("GET", path, seen, None), ("GET", path, {}, None)]
    requests += [
        ("GET", f"/api/v1/items/{item_id}", {"Authorization": "Bearer x"}, None),
        ("GET", f"/api/v1/items/{item_id}", {"Authorization": "Basic eDp5"}, None),
        ("GET", f"/api/v1/items/{item_id}", {**auth, "X-Consistency-Token": "nope"}, None),
        ("GET", "/api/v1/items", {**auth, "X-Consistency-Token": "FFFFFFFF/FFFFFFFF"}, None),
    ]
    body = json.dumps({"title": "parity"}).encode()
    writes: list[tuple[dict[str, str], bytes | None]] = [
        ({**auth, **JSON}, body),
        ({**auth, "Content-Type": "Application/JSON"}, body),
        ({**auth, "Content-Type": "application/json; charset=utf-8"}, body),
        ({**auth, "Content-Type": "application/merge-patch+json"}, body),
        ({**auth, "Content-Type": "text/plain"}, body),
        (auth, body),
        ({**auth, **JSON}, b'{"title": "nul \\u0000"}'),
        ({**auth, **JSON}, b'{"title": "x", "owner_id": 1}'),
        ({**auth, **JSON}, b'{"title": "' + b"x" * 101 + b'"}'),
        ({**auth, **JSON}, b'{"title": '),
        ({**auth, **JSON}, b""),
        ({**auth, **JSON}, b"[]"),
        ({**auth, **JSON}, b'{"title": "x", "status": "bogus"}'),
        ({**auth, **JSON, "Idempotency-Key": "a key with spaces"}, body),
        ({**auth, **JSON, "X-Consistency-Token": "nope"}, body),
        ({**JSON}, body),
        ({**JSON, "Authorization": "Bearer x"}, body),
    ]
    requests += [("POST", "/api/v1/items", headers, content) for headers, content in writes]
    return requests


def _own_key(headers: dict[str, str], path: str) -> dict[str, str]:
    """Each path its own Idempotency-Key: with one key, the second would answer the first's outcome,
    201 or 202 depending on whether the worker had applied it yet."""
    key = headers.get("Idempotency-Key")
    return headers if key is None else {**headers, "Idempotency-Key": f"{key} {path}"}


def _seen(response: httpx.Response) -> tuple[int, Any, list[tuple[str, str]]]:
    """Status, body and headers, with what differs between any two answers (ids, dates) masked."""
    text = UUID.sub("<uuid>", response.text)
    body = json.loads(text) if "json" in response.headers.get("content-type", "") and text else text
    headers = sorted(
        (name, UUID.sub("<uuid>", value)) for name, value in response.headers.items() if name not in VOLATILE
    )
    return response.status_code, body, headers


async def test_the_fast_path_answers_as_the_fastapi_routes(http: httpx.AsyncClient, slow: httpx.AsyncClient) -> None:
    alice = await sign_up(http)
    created = await create_item(http, alice, title="an item")
    item, token = created.json(), created.headers["X-Consistency-Token"]
    assert await http.get(f"/api/v1/items/{item['id']}", headers={**alice.headers, "X-Consistency-Token": token})
    differences = []
    for method, path, headers, content in _requests(alice, item, token):
        fast = await http.request(method, path, headers=_own_key(headers, "fast"), content=content)
        fastapi = await slow.request(method, path, headers=_own_key(headers, "routes"), content=content)
        if _seen(fast) != _seen(fastapi):
            differences.append((method, path[:80], headers.get("Content-Type"), _seen(fast), _seen(fastapi)))
    assert not differences, "\n".join(map(str, differences))


async def test_two_authorization_headers_are_refused_alike(http: httpx.AsyncClient, slow: httpx.AsyncClient) -> None:
    alice = await sign_up(http)
    headers = [
        ("Authorization", alice.headers["Authorization"]),
        ("Authorization", "Bearer x"),
        ("Content-Type", "application/json"),
    ]
    for method, path, content in [("POST", "/api/v1/items", b'{"title": "x"}'), ("GET", "/api/v1/items", None)]:
        answers = [await client.request(method, path, headers=headers, content=content) for client in (http, slow)]
        assert _seen(answers[0]) == _seen(answers[1])
        assert answers[0].status_code == 400
