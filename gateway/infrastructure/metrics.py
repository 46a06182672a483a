"""The gateway's Prometheus metrics (edge/middleware.py counts each request; routes/metrics.py serves them).

The gateway may run several processes (GATEWAY_WORKERS): its launchers give it an empty
PROMETHEUS_MULTIPROC_DIR, where each process keeps its metrics in files, and a scrape of any
process adds up all of them (prometheus_client's multiprocess mode).
"""

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def exposition() -> bytes:
    """Every gateway process's metrics in multiprocess mode, else this process's registry."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
