"""Per-request observability: a request id, one JSON log line, and Prometheus metrics at /metrics.

The gateway may run several processes (GATEWAY_WORKERS): its launchers give it an empty
PROMETHEUS_MULTIPROC_DIR, where each process keeps its metrics in files, and a scrape of any
process adds up all of them (prometheus_client's multiprocess mode).
"""

import os
import time

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routes.health import get_checks
from shared import tracing
from shared.logging import begin_request, new_request_id

if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(directory, exist_ok=True)  # the launcher empties it at start; a process may come first
REQUEST_ID_HEADER = "X-Request-ID"
ROUTE_KEY = "opengovfood.route"  # the scope key where a route answered outside FastAPI notes its template
log = structlog.get_logger("gateway.access")

REQUESTS = Counter("opengovfood_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "opengovfood_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Queue depths and consumers are RabbitMQ's own metrics (rabbitmq_prometheus); the replica's lag is ours.
# Each process samples it when scraped; across processes the newest sample wins.
REPLICA_LAG_BYTES = Gauge(
    "opengovfood_replica_lag_bytes", "WAL bytes the replica has not replayed yet", multiprocess_mode="mostrecent"
)
REPLICA_LAG_SECONDS = Gauge(
    "opengovfood_replica_lag_seconds", "Seconds behind (0 when caught up)", multiprocess_mode="mostrecent"
)


def _route(request: Request) -> str:
    """The route template, never the raw path (ids would explode the label set)."""
    if (hot := request.scope.get(ROUTE_KEY)) is not None:  # answered by gateway/hot.py
        return str(hot)
    effective = (request.scope.get("fastapi") or {}).get("effective_route_context")
    if effective is not None:  # a route of an included router: its full path, prefixes included
        return str(effective.path)
    route = request.scope.get("route")
    if route is None:  # routes Starlette adds itself (/openapi.json, /docs) do not note themselves
        route = next((r for r in request.app.routes if r.matches(request.scope)[0] == Match.FULL), None)
    return str(getattr(route, "path", "unmatched"))


class Observe:
    """ASGI middleware: request id in (X-Request-ID honoured) and out; metrics and one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        notes = begin_request(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
                tracing.name_server_span(scope.get(ROUTE_KEY), scope["method"])  # gateway/hot.py's routes
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            request = Request(scope)
            route = _route(request)
            if route != "/metrics":
                REQUESTS.labels(request.method, route, str(status)).inc()
                LATENCY.labels(request.method, route).observe(elapsed)
            log.info("request", method=request.method, route=route, status=status, ms=round(elapsed * 1000, 2), **notes)


async def sample_replica_lag(request: Request) -> None:
    """Set the lag gauges from the readiness checks' cache: one query a second at most, whoever asks."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    lag = await get_checks(request).result("replica_lag", services.status.replica_lag)
    if lag is not None:  # unmeasured (a database away): the last sample stays
        REPLICA_LAG_BYTES.set(lag["bytes"])
        REPLICA_LAG_SECONDS.set(lag["seconds"])


def exposition() -> bytes:
    """Every gateway process's metrics in multiprocess mode, else this process's registry."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    """Prometheus exposition (text format)."""
    await sample_replica_lag(request)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def instrument(app: FastAPI) -> None:
    """Register the outermost middleware and the /metrics route."""
    app.add_middleware(Observe)
    app.add_api_route("/metrics", metrics, include_in_schema=False)
