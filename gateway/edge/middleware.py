"""The one ASGI middleware in front of every route: what each request gets before and after it.

Before: a request id (X-Request-ID honoured when sane), the header size (431), the body size (413,
declared or counted while streaming) and the rate limits (429). After: X-Request-ID, the client's
X-Consistency-Token echoed on success, X-Served-By (which database answered), the metrics and one
access line. One layer instead of three: each layer wrapped `send` and parsed the headers again,
a visible share of a hot request's CPU.
"""

import time
from typing import Any

import jwt
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.problems import Problem, answer_for
from gateway.http.request import TOKEN_HEADER, RequestReads, begin_reads
from gateway.infrastructure.limits import (
    LOGIN_PATH,
    SIGNUP_PATH,
    WRITE_METHODS,
    RateLimits,
    body_cap,
    body_caps,
    client_address,
)
from gateway.infrastructure.metrics import LATENCY, REQUESTS
from gateway.infrastructure.security import AUTHORIZATION, BEARER_KEY, bearer, subject_of
from shared import tracing
from shared.logging import begin_request, new_request_id, write_line
from shared.settings import Settings

ROUTE_KEY = "opengovfood.route"  # where a route answered outside FastAPI (gateway/edge/hot.py) notes its template
HEADERS_KEY = "opengovfood.headers"  # the request's headers by lower-case name, read once here
TOKEN = TOKEN_HEADER.lower().encode()


class Edge:
    """Request id, limits, consistency headers, metrics and the access line, in one pass."""

    def __init__(self, app: ASGIApp, settings: Settings, rate_limits: RateLimits) -> None:
        self.app = app
        self.settings = settings
        self.rate_limits = rate_limits
        self.caps = body_caps(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, str] = {}
        size, authorizations = 0, 0
        for name, value in scope["headers"]:
            headers[name] = value.decode("latin-1")
            size += len(name) + len(value) + 4
            authorizations += name == AUTHORIZATION
        scope[HEADERS_KEY] = headers
        scope[BEARER_KEY] = bearer(headers.get(AUTHORIZATION))
        request_id = new_request_id(headers.get(b"x-request-id"))
        notes = begin_request(request_id)
        reads = begin_reads()
        echoed = headers.get(TOKEN)
        started, status = time.perf_counter(), 500

        async def respond(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _answer_headers(message, request_id, echoed, reads)
                tracing.name_server_span(scope.get(ROUTE_KEY), scope["method"])  # gateway/edge/hot.py's routes
            await send(message)

        try:
            cap = body_cap(scope["path"], self.settings, self.caps)
            problem = self._refusal(scope, headers, size, cap, authorizations)
            if problem is not None:
                answer = answer_for(problem)
                assert answer is not None
                await answer(scope, receive, respond)
                return
            guard = _BodyGuard(scope, receive, respond, cap)
            await self.app(scope, guard.receive, guard.send)
        finally:
            self._account(scope, status, time.perf_counter() - started, notes, request_id)

    def _refusal(
        self, scope: Scope, headers: dict[bytes, str], size: int, cap: int, authorizations: int
    ) -> Problem | None:
        """Why the request is answered here, before any route (None: it goes on)."""
        if size > self.settings.max_header_bytes:
            return Problem(431, f"the request headers are larger than {self.settings.max_header_bytes} bytes")
        if authorizations > 1:  # which one speaks? Whichever we picked, a caller could pay with the other
            return Problem(400, "more than one Authorization header: send one")
        declared = headers.get(b"content-length", "")
        if declared.isdigit() and int(declared) > cap:
            return _too_large(cap)
        try:
            self._rate_limit(scope, headers)
        except Problem as problem:
            return problem
        return None

    def _rate_limit(self, scope: Scope, headers: dict[bytes, str]) -> None:
        method, path = scope["method"], scope["path"]
        if method not in WRITE_METHODS or not path.startswith("/api/"):
            return
        limits = self.rate_limits
        client = client_address(scope, self.settings.trusted_proxy_hops)
        if path == LOGIN_PATH:
            limits.hit(limits.login_per_client, "login attempts from this client", "login", client)
        elif path == SIGNUP_PATH and method == "POST":
            limits.hit(limits.signup_per_client, "sign-ups from this client", "signup", client)
        else:
            caller = self._caller(scope[BEARER_KEY]) or f"client:{client}"
            limits.hit(limits.write_per_caller, "writes from this caller", "write", caller)

    def _caller(self, token: str | None) -> str | None:
        """The verified user of a bearer token (a flood from one user shares one bucket)."""
        if token is None:
            return None
        try:
            return f"user:{subject_of(token, self.settings).user_id}"
        except jwt.InvalidTokenError:
            return None

    def _account(self, scope: Scope, status: int, elapsed: float, notes: dict[str, str], request_id: str) -> None:
        """The metrics and the access line of one answered request."""
        route, method = _route(scope), scope["method"]
        if route != "/metrics":
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
        fields: dict[str, Any] = {"request_id": request_id, "method": method, "route": route, "status": status}
        write_line("request", "gateway.access", fields | {"ms": round(elapsed * 1000, 2)} | notes)


def _answer_headers(message: Message, request_id: str, echoed: str | None, reads: RequestReads) -> list[Any]:
    """The answer's headers, with ours added (a route's own X-Consistency-Token wins over the echo)."""
    headers = list(message.get("headers", []))
    headers.append((b"x-request-id", request_id.encode()))
    if echoed and message["status"] < 400 and not any(name == TOKEN for name, _ in headers):
        headers.append((TOKEN, echoed.encode("latin-1")))
    if reads.served_by:
        headers.append((b"x-served-by", reads.served_by[-1].encode()))
    return headers


def _route(scope: Scope) -> str:
    """The route template, never the raw path (ids would explode the label set)."""
    if (hot := scope.get(ROUTE_KEY)) is not None:
        return str(hot)
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    if effective is not None:  # a route of an included router: its full path, prefixes included
        return str(effective.path)
    route = scope.get("route")
    if route is None:  # routes Starlette adds itself (/openapi.json, /docs) do not note themselves
        app = scope.get("app")
        routes = getattr(app, "routes", [])
        route = next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)
    return str(getattr(route, "path", "unmatched"))


def _too_large(cap: int) -> Problem:
    return Problem(413, f"the request body is larger than this route accepts ({cap} bytes)")


class _BodyGuard:
    """Counts the body as the app reads it (chunked uploads too); past the cap it answers 413 itself.

    It then tells the app the client went away and drops whatever the app answers: raising through
    the app instead would be turned into a 400 by FastAPI's body parsing.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        self.scope, self._receive, self._send, self.cap = scope, receive, send, cap
        self.received = 0
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.cap and not self.started:
                self.refused = True
                answer = answer_for(_too_large(self.cap))
                assert answer is not None
                await answer(self.scope, self._receive, self._send)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)
