"""Traces follow one command from the HTTP request over the bus into the worker's batch and out with its
event, exported over OTLP to a collector; with no exporter configured nothing is traced."""

import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aio_pika
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from shared.tracing import configure_tracing, exporter_names
from tests.support.api import WAIT, create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.events import tap_events
from tests.support.polling import eventually
from tests.support.processes import ROOT, Gateway, Worker
from tests.support.tap import tap_commands

GATEWAY, WORKER = "opengovfood-gateway", "opengovfood-worker"
ROUTING_KEY, MESSAGE_ID = "messaging.rabbitmq.destination.routing_key", "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[tuple[str, str], ...]
    attributes: dict[str, Any]


class Collector:
    """What an OpenTelemetry Collector's OTLP/HTTP receiver does with traces: take them, keep them here."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        collector = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.take(ExportTraceServiceRequest.FromString(body) if self.path == "/v1/traces" else None)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest | None) -> None:
        for resource_spans in request.resource_spans if request else []:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Span(
                            service=attributes.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                            attributes={a.key: a.value.string_value or a.value.int_value for a in span.attributes},
                        )
                    )

    def __enter__(self) -> "Collector":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def traced(worker: Worker) -> Iterator[tuple[Collector, Gateway]]:
    """A gateway and a worker exporting to a collector (the stack's worker steps aside meanwhile)."""
    with Collector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        worker.stop()
        try:
            with (
                Worker(env=env, name="worker-traced"),
                Gateway(env=env, name="gateway-traced") as gateway,
            ):
                yield collector, gateway  # type: ignore[misc]
        finally:
            worker.start()


async def _item_created(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage | None:
    """The next item.created event on the tap, skipping other events; None while there is none."""
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        if message.routing_key == "item.created":
            return message
    return None


def _header(message: aio_pika.abc.AbstractIncomingMessage, name: str) -> str:
    value = (message.headers or {})[name]
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_one_trace_from_the_request_through_the_worker_to_the_event(
    traced: tuple[Collector, Gateway],
) -> None:
    collector, gateway = traced
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http, tap_events() as events:
        client = await sign_up(http)
        created = await create_item(http, client, title=f"traced {uuid.uuid4().hex[:8]}")
        assert created.status_code == 201, created.text
        event = await eventually(lambda: _item_created(events.queue), lambda m: m is not None)
    assert event is not None

    spans = await eventually(lambda: _spans(collector), lambda found: _follow(found) is not None, deadline_s=10)
    followed = _follow(spans)
    assert followed is not None
    request, publish, receipt, batch, sent = followed
    trace_id = publish.trace_id
    assert request.trace_id == trace_id
    assert _ancestors(spans, publish) >= {request.span_id}  # the publish happened inside the request
    assert receipt.name.startswith("receive opengovfood.commands.p")
    assert (receipt.trace_id, receipt.parent_id) == (trace_id, publish.span_id)  # carried in AMQP headers
    assert (trace_id, receipt.span_id) in batch.links
    assert batch.trace_id != trace_id  # a batch applies many commands: it links to each, child of none
    assert not batch.parent_id
    assert (sent.trace_id, sent.parent_id) == (trace_id, receipt.span_id)
    assert _header(event, "traceparent").split("-")[1:3] == [trace_id, sent.span_id]


async def test_a_command_published_with_a_trace_of_its_own_joins_that_trace(traced: tuple[Collector, Gateway]) -> None:
    collector, gateway = traced
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        client = await sign_up(http)
    their_trace, their_span, command_id = uuid.uuid4().hex, uuid.uuid4().hex[:16], str(uuid.uuid4())
    theirs = {"traceparent": f"00-{their_trace}-{their_span}-01"}  # another service's, traced by that service
    body = {"owner_id": client.id, "title": "their trace"}
    owner = str(client.id)
    message = command_message(body, actor=f"user:{owner}", owner=owner, command_id=command_id, headers=theirs)
    await publish([("item.create", message)])
    spans = await eventually(lambda: _spans(collector), lambda found: bool(_where(found, **{MESSAGE_ID: command_id})))
    (received,) = _where(spans, service=WORKER, **{MESSAGE_ID: command_id})
    assert (received.trace_id, received.parent_id) == (their_trace, their_span)


def _follow(spans: list[Span]) -> tuple[Span, Span, Span, Span, Span] | None:
    """The item.create command's request, publish, receipt, batch transaction and event publish, once all came."""
    publishes = _where(spans, service=GATEWAY, **{ROUTING_KEY: "item.create"})
    if not publishes:
        return None
    command_id = publishes[0].attributes[MESSAGE_ID]
    receipts = _where(spans, service=WORKER, **{MESSAGE_ID: command_id})
    batches = [s for s in _where(spans, name="apply batch") if {link[1] for link in s.links} & _ids(receipts)]
    requests = _where(spans, service=GATEWAY, name="POST /api/v1/items")  # ends after the answer: may come last
    sent = _where(spans, name="publish opengovfood.events", **{CONVERSATION_ID: command_id})
    if not (receipts and batches and requests and sent):
        return None
    return requests[0], publishes[0], receipts[0], batches[0], sent[0]


def _where(spans: list[Span], **wanted: Any) -> list[Span]:
    return [s for s in spans if all(getattr(s, k, s.attributes.get(k)) == v for k, v in wanted.items())]


def _ids(spans: list[Span]) -> set[str]:
    return {span.span_id for span in spans}


async def _spans(collector: Collector) -> list[Span]:
    return list(collector.spans)


def _ancestors(spans: list[Span], span: Span) -> set[str]:
    by_id = {s.span_id: s for s in spans}
    found, parent = set(), span.parent_id
    while parent in by_id:
        found.add(parent)
        parent = by_id[parent].parent_id
    return found


async def test_with_no_exporter_configured_commands_carry_no_trace(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)
    async with tap_commands() as tap:
        response = await http.post("/api/v1/items", json={"title": "untraced"}, headers={**client.headers, **WAIT})
        assert response.status_code == 201
        (command,) = await tap.drain()
    assert "traceparent" not in (command.headers or {})


def test_the_standard_variables_switch_tracing_on() -> None:
    assert exporter_names({}) == []
    assert exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert exporter_names({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}) == ["otlp"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == []
    assert exporter_names({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}) == []
    with pytest.raises(ValueError, match="http/protobuf"):
        configure_tracing("test", {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_with_no_exporter_configured_no_sdk_is_loaded() -> None:
    """Building the gateway and the worker untraced loads the API only (a few no-op hooks), never the SDK."""
    probe = (
        "import sys; from gateway.app import create_app; from worker.app import Worker; create_app(); Worker();"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.sdk')], 'SDK loaded'"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
