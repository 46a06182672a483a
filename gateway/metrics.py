"""Prometheus metrics at /metrics (gateway/edge.py counts each request).

The gateway may run several processes (GATEWAY_WORKERS): its launchers give it an empty
PROMETHEUS_MULTIPROC_DIR, where each process keeps its metrics in files, and a scrape of any
process adds up all of them (prometheus_client's multiprocess mode).
"""

import os

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

from gateway.routes.health import get_checks

if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(directory, exist_ok=True)  # the launcher empties it at start; a process may come first

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
    """Register the /metrics route (gateway/edge.py counts the requests)."""
    app.add_api_route("/metrics", metrics, include_in_schema=False)
