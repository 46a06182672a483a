"""Traces (OpenTelemetry): where they come from, and nothing at all while no exporter is configured.

Spans come from four hooks: the gateway's HTTP request (FastAPI's own telemetry, `http_telemetry`),
every publish (`publishing`, shared/publishing.py), the worker's receipt of each command
(`received`, worker/pipeline.py) and each batch's transaction (`transaction`, worker/unit_of_work.py).
The context crosses the bus in AMQP headers (W3C `traceparent`/`tracestate`). A transaction
applies many commands, so its span links to each command's receipt instead of having a parent;
what the worker then sends about a command (its event, outcome or dead letter, correlated by the
command id) continues that command's trace. Off (the default), each hook returns after one test.
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Tracer

from shared.topology import partition_queue_name

if TYPE_CHECKING:  # the SDK is imported only when tracing is on
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace.export import SpanExporter

REMEMBERED_COMMANDS = 65_536  # receipts kept for the worker's later publishes about them (~10 MB at most)
UNTRACED_PATHS = ("/metrics", "/health/")  # scrapes and probes: spans nobody wants
_OFF: nullcontext[None] = nullcontext()
_tracer: Tracer | None = None  # None: tracing is off
_receipts: dict[str, SpanContext] = {}  # command id -> the worker's receipt of it, oldest first


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """AMQP header values may arrive as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode(errors="replace") if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_HEADERS = _HeaderGetter()


def exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters the standard OTEL_* variables ask for; none (tracing off) unless they ask."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if not names:  # an OTLP endpoint alone means OTLP
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        names = ["otlp"] if endpoint else []
    return [name for name in names if name != "none"]


def _exporter(name: str, environ: Mapping[str, str]) -> "SpanExporter":
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if name != "otlp" or protocol not in (None, "http/protobuf"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={name} (protocol {protocol}): only otlp over http/protobuf or console")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK with the configured exporters (once per process); False when tracing is off."""
    global _tracer
    names = exporter_names(environ)
    if _tracer is not None or not names:
        return _tracer is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or f"opengovfood-{service}"})
    # A batch's span links to every command in it (SDK default: 128), unless the operator bounds it.
    links = None if "OTEL_SPAN_LINK_COUNT_LIMIT" in environ else SpanLimits.UNSET
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_links=links))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))  # OTEL_BSP_*
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("opengovfood")
    return True


def http_telemetry() -> "TelemetryConfig":
    """FastAPI's own OpenTelemetry: server spans while tracing is on, not even a check per request when off."""
    on = _tracer is not None
    return {"tracing": on, "metrics": False, "logs": False, "auto_configure": False, "exclude": _untraced}


def _untraced(scope: Any) -> bool:
    return str(scope.get("path", "")).startswith(UNTRACED_PATHS)


def name_server_span(route: str | None, method: str) -> None:
    """Name FastAPI's server span after a route answered outside FastAPI's router (FastAPI names the others)."""
    if _tracer is None or route is None:
        return
    span = trace.get_current_span()
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)


def publishing(message: aio_pika.Message, exchange: str, routing_key: str) -> AbstractContextManager[None]:
    """A PRODUCER span around one publish, its context written into the message's headers."""
    if _tracer is None:
        return _OFF
    return _publishing(_tracer, message, exchange, routing_key)


@contextmanager
def _publishing(tracer: Tracer, message: aio_pika.Message, exchange: str, routing_key: str) -> Iterator[None]:
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": exchange or "amq.default",
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message.message_id or "",
        "messaging.message.conversation_id": message.correlation_id or "",
    }
    name = f"publish {exchange or 'amq.default'}"  # a reply's queue name would make one span name per gateway
    with tracer.start_as_current_span(name, context=_parent(message), kind=SpanKind.PRODUCER, attributes=attributes):
        propagate.inject(message.headers)
        yield


def _parent(message: aio_pika.Message) -> Context | None:
    """The worker's receipt of the command this message is about; else the trace the message already
    carries (a dead letter replayed); else the current one (the gateway's HTTP request)."""
    receipt = _receipts.get(message.correlation_id or "")
    if receipt is not None:
        return trace.set_span_in_context(NonRecordingSpan(receipt))
    if "traceparent" in message.headers:
        return propagate.extract(message.headers, getter=_HEADERS)
    return None


def received(message: AbstractIncomingMessage, partition: int) -> None:
    """The worker's receipt of one command, a CONSUMER span in its publisher's trace. It ends at once:
    the command is applied later, in a batch's transaction, whose span links to this one."""
    if _tracer is None:
        return
    queue = partition_queue_name(partition)
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "receive",
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
        "messaging.message.id": message.message_id or "",
    }
    parent = propagate.extract(message.headers or {}, getter=_HEADERS)
    span = _tracer.start_span(f"receive {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
    span.end()
    if message.message_id:  # the command id (the contract)
        _receipts.pop(message.message_id, None)
        _receipts[message.message_id] = span.get_span_context()
        if len(_receipts) > REMEMBERED_COMMANDS:
            del _receipts[next(iter(_receipts))]


def transaction(command_ids: Iterable[uuid.UUID]) -> AbstractAsyncContextManager[None]:
    """A span around one batch's transaction, a root with a link to each command's receipt."""
    if _tracer is None:
        return _OFF
    return _transaction(_tracer, command_ids)


@asynccontextmanager
async def _transaction(tracer: Tracer, command_ids: Iterable[uuid.UUID]) -> AsyncIterator[None]:
    receipts = [_receipts.get(str(command_id)) for command_id in command_ids]
    links = [Link(receipt) for receipt in receipts if receipt is not None]
    attributes = {"messaging.batch.message_count": len(receipts)}
    with tracer.start_as_current_span("apply batch", context=Context(), attributes=attributes, links=links):
        yield
