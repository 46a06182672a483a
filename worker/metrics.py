"""The worker's Prometheus metrics (own HTTP port) and its one log line per command."""

import collections
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter, Histogram, start_http_server

from shared.contracts.commands import CommandName
from shared.contracts.headers import HEADER_REQUEST_ID
from shared.contracts.outcomes import Outcome
from shared.logging import header_text, write_line
from worker.envelope import Envelope

log = structlog.get_logger("worker.commands")

# Counted per batch (a batch's count at once); latencies stay per command: each has its own.
# Commands received = opengovfood_commands_total (all statuses) + opengovfood_commands_poison_total.
OUTCOMES = Counter(
    "opengovfood_commands", "Commands by outcome (applied, rejected, dead_lettered)", ["command", "status"]
)
POISON = Counter("opengovfood_commands_poison", "Messages dead-lettered before they could be decoded", ["command"])
REPLIES_REFUSED = Counter(
    "opengovfood_replies_refused",
    "Outcomes not sent: reply_to is not a reply queue of the command's publisher",
    ["command"],
)
APPLY_LATENCY = Histogram(
    "opengovfood_command_apply_seconds",
    "From the worker's receipt of a command until its batch is committed and acked",
    ["command"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PUBLISH_TO_COMMIT = Histogram(
    "opengovfood_command_publish_to_commit_seconds",
    "From the message timestamp (publish; AMQP timestamps have whole-second resolution) to the commit",
    ["command"],
    buckets=(1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
BATCH_SIZE = Histogram(
    "opengovfood_batch_size",
    "Commands per batch of one partition (batches ready together share a transaction)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 400, 1000),
)


def start_metrics_server(port: int) -> bool:
    """Serve /metrics on the port (0: off); a port in use is logged, never fatal."""
    if port <= 0:
        return False
    try:
        start_http_server(port)
    except OSError as error:
        log.warning("metrics server not started", port=port, error=str(error))
        return False
    log.info("metrics server started", port=port)
    return True


def command_label(routing_key: str | None) -> str:
    """A bounded label: a known command name, else "unknown"."""
    known = {name.value for name in CommandName}
    return routing_key if routing_key is not None and routing_key in known else "unknown"


def observe_poison(message: AbstractIncomingMessage, reason: str) -> None:
    label = command_label(message.routing_key)
    POISON.labels(label).inc()
    log.warning(
        "command dead-lettered",
        command_id=message.message_id,
        request_id=header_text(message.headers, HEADER_REQUEST_ID),
        command=label,
        status="dead_lettered",
        reason=reason[:500],
    )


def _since_publish_s(message: AbstractIncomingMessage, now: float) -> float | None:
    stamp = message.timestamp
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return max(0.0, now - stamp.timestamp())


def observe_batch(applied: Sequence[tuple[AbstractIncomingMessage, Envelope[Any], Outcome]]) -> None:
    """After the commit: counts, latencies and one log line per decoded command."""
    if not applied:
        return
    BATCH_SIZE.observe(len(applied))
    for (name, status), count in collections.Counter((o.name, o.status.value) for _, _, o in applied).items():
        OUTCOMES.labels(name, status).inc(count)
    now = datetime.now(UTC)
    for message, envelope, outcome in applied:
        latency = max(0.0, (now - envelope.received_at).total_seconds())
        APPLY_LATENCY.labels(outcome.name).observe(latency)
        since_publish = _since_publish_s(message, now.timestamp())
        if since_publish is not None:
            PUBLISH_TO_COMMIT.labels(outcome.name).observe(since_publish)
        fields = {
            "command_id": str(outcome.command_id),
            "request_id": envelope.request_id,
            "command": outcome.name,
            "status": outcome.status.value,
            "code": outcome.code.value,
            "resource_id": outcome.resource_id,
            "latency_ms": round(latency * 1000, 2),
        }
        write_line(f"command {outcome.status.value}", "worker.commands", fields)
