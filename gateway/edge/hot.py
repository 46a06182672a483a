"""The routes that carry the load, answered without FastAPI's per-request machinery.

`POST /api/v1/items`, `GET /api/v1/items/{id}` and `GET /api/v1/items` run here on the same functions
the FastAPI routes use (caller, dispatch, repository), minus dependency resolution, its exception layers and its
response model validation. Whatever this path would not answer with success (a body or a value it
does not accept, a missing or refused token) goes on to the FastAPI route untouched, with the body
it already read: that route says why, so every error answer has one source.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import jwt
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.edge.middleware import HEADERS_KEY, ROUTE_KEY
from gateway.http.problems import Problem, answer_for
from gateway.http.request import ITEM_ID, TOKEN_HEADER, parse_token, path_id, prefer_wait
from gateway.http.schemas import ItemCreate, item_json
from gateway.infrastructure.auth import caller
from gateway.infrastructure.idempotency import KEY_PATTERN
from gateway.infrastructure.repository import UserRecord
from gateway.infrastructure.security import BEARER_KEY
from gateway.infrastructure.services import Services
from gateway.operations import reads, writes
from gateway.operations.reads import ItemListing
from shared.etag import item_etag

ITEMS = "/api/v1/items"
ITEM = ITEMS + "/"
ITEM_TEMPLATE = ITEMS + ITEM_ID  # as the FastAPI route is labelled in the metrics
MAX_ID = 2**31 - 1
JSON = b"application/json"
KEY = re.compile(KEY_PATTERN)
NOT_THIS_PATH = object()  # the request goes on to the route
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class HotRoutes:
    """ASGI middleware in front of the routes: the hot paths here, everything else passed on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle = self._handler(scope) if scope["type"] == "http" else None
        if handle is None:
            await self.app(scope, receive, send)
            return
        try:
            await handle(scope, receive, send)
        except Exception as error:  # as the routes answer it: a Problem as itself, a database away as 503
            if (answer := answer_for(error)) is None:
                raise
            await answer(scope, receive, send)

    def _handler(self, scope: Scope) -> Handler | None:
        """The fast path of this request, noting its route template (None: the routes take it)."""
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == ITEMS:
            scope[ROUTE_KEY] = ITEMS
            return self._create_item
        if method == "GET" and path == ITEMS:
            scope[ROUTE_KEY] = ITEMS
            return self._list_items
        if method == "GET" and path.startswith(ITEM) and path_id(path[len(ITEM) :]) is not None:
            scope[ROUTE_KEY] = ITEM_TEMPLATE
            return self._read_item
        return None

    async def _read_item(self, scope: Scope, receive: Receive, send: Send) -> None:
        item_id = path_id(scope["path"][len(ITEM) :]) or 0
        headers: dict[bytes, str] = scope[HEADERS_KEY]
        services: Services = scope["app"].state.services
        token = _token(headers)
        user = await _caller(services, scope[BEARER_KEY], token) if token is not NOT_THIS_PATH else None
        if user is None or not 0 < item_id <= MAX_ID:
            await self.app(scope, receive, send)
            return
        item = await reads.read_item(services, token, item_id, user.id)
        if item is None:
            await self.app(scope, receive, send)  # the route answers the 404
            return
        body = item_json(item)
        await _send_json(send, 200, body, [(b"etag", item_etag(item).encode())])

    async def _list_items(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, str] = scope[HEADERS_KEY]
        services: Services = scope["app"].state.services
        token = _token(headers)
        asked = _listing(scope["query_string"]) if token is not NOT_THIS_PATH else None
        user = await _caller(services, scope[BEARER_KEY], token) if asked is not None else None
        if asked is None or user is None:
            await self.app(scope, receive, send)
            return
        page = await reads.list_items(services, user, token, asked)
        page["data"] = [row._asdict() for row in page["data"]]
        await _send_json(send, 200, to_json(page), [])  # ItemsPage's JSON (its fields, in its order)

    async def _create_item(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, str] = scope[HEADERS_KEY]
        body, replay = await _read_body(receive)
        services: Services = scope["app"].state.services
        key = headers.get(b"idempotency-key")
        token = _token(headers)
        usable = token is not NOT_THIS_PATH and _is_json(headers) and (key is None or KEY.match(key))
        fields = _valid_item(body) if usable else None
        user = await _caller(services, scope[BEARER_KEY], token) if fields is not None else None
        if fields is None or user is None:
            await self.app(scope, replay, send)
            return
        wait = prefer_wait(headers.get(b"prefer"), services.settings.prefer_wait_max)
        response = await writes.create_item(services, user, fields, wait=wait, key=key)
        await response(scope, replay, send)


async def _caller(services: Services, credentials: str | None, token: int | None) -> UserRecord | None:
    """The verified caller, or None when the route should answer (no token, a refused one)."""
    if credentials is None:
        return None
    try:
        return await caller(credentials, token, settings=services.settings, users=services.users, reads=services.reads)
    except (jwt.InvalidTokenError, Problem):
        return None


def _token(headers: dict[bytes, str]) -> Any:
    """The request's consistency token (None without one; NOT_THIS_PATH if it is not one)."""
    value = headers.get(TOKEN_HEADER.lower().encode())
    if value is None:
        return None
    try:
        return parse_token(value)
    except ValueError:
        return NOT_THIS_PATH


def _listing(query_string: bytes) -> ItemListing | None:
    """The listing asked, read as the route reads its query (None: the route answers, whether it
    accepts the query or says why not)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)  # as Starlette reads it
    given = dict(pairs)
    if len(given) != len(pairs) or "" in given.values():  # a name twice, a blank value: the route's call
        return None
    try:
        return ItemListing.model_validate(given)
    except ValidationError:
        return None


def _is_json(headers: dict[bytes, str]) -> bool:
    return headers.get(b"content-type", "").split(";", 1)[0].strip().encode() == JSON


def _valid_item(body: bytes) -> ItemCreate | None:
    try:
        return ItemCreate.model_validate_json(body)
    except ValidationError:
        return None


async def _read_body(receive: Receive) -> tuple[bytes, Callable[[], Awaitable[Message]]]:
    """The whole body, and a `receive` that hands it over again (to the route, or to a response)."""
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", receive  # the client left: whoever reads next sees the disconnect
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


async def _send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
