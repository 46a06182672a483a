"""Prometheus /metrics on the gateway and on the worker's own port count what happened."""

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests import settings as test_settings
from tests.support.api import create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def worker_url() -> str:
    return f"http://127.0.0.1:{test_settings.ENV['WORKER_METRICS_PORT']}/metrics"


async def test_gateway_and_worker_metrics_count_the_traffic(
    http: httpx.AsyncClient, stack: tuple[Worker, Gateway]
) -> None:
    gateway_url = f"{stack[1].url}/metrics"
    client = await sign_up(http)
    gateway_before, worker_before = await scrape(gateway_url), await scrape(worker_url())

    for n in range(3):
        assert (await create_item(http, client, title=f"metered {n}")).status_code == 201
    poison = command_message(b"not json", actor=f"user:{client.id}", owner=str(client.id), command_id=uuid.uuid4())
    await publish([("item.create", poison)])

    def poisoned(samples: Samples) -> bool:
        return value(samples, "worker_commands_poison_total", command="item.create") > value(
            worker_before, "worker_commands_poison_total", command="item.create"
        )

    worker_after = await eventually(lambda: scrape(worker_url()), poisoned, deadline_s=10)
    gateway_after = await scrape(gateway_url)

    def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    created = {"method": "POST", "route": "/api/v1/items", "status": "201"}
    assert delta(gateway_before, gateway_after, "gateway_http_requests_total", **created) == 3
    latency = {"method": "POST", "route": "/api/v1/items"}
    assert delta(gateway_before, gateway_after, "gateway_http_request_duration_seconds_count", **latency) == 3
    assert value(gateway_after, "gateway_http_request_duration_seconds_bucket", **latency, le="+Inf") >= 3

    applied = {"command": "item.create", "status": "applied"}
    assert delta(worker_before, worker_after, "worker_commands_total", **applied) == 3
    assert delta(worker_before, worker_after, "worker_commands_received_total", command="item.create") == 4
    assert delta(worker_before, worker_after, "worker_commands_poison_total", command="item.create") == 1
    assert delta(worker_before, worker_after, "worker_apply_latency_seconds_count", command="item.create") == 3
    assert delta(worker_before, worker_after, "worker_publish_to_commit_seconds_count", command="item.create") == 3
    assert delta(worker_before, worker_after, "worker_batch_size_sum") == 3
    assert delta(worker_before, worker_after, "worker_batch_size_count") >= 1

    assert value(gateway_after, "opengovfood_queue_consumers", queue="opengovfood.commands.p0") >= 1
    assert value(gateway_after, "opengovfood_queue_messages", queue="opengovfood.dead-letter") >= 1
    assert ("opengovfood_replica_lag_bytes", frozenset()) in gateway_after
