"""Prometheus /metrics on the gateway (every process in one scrape) and on the worker's own port count
what happened, under one prefix; queue figures come from RabbitMQ's own exporter."""

import asyncio
import re
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from gateway.routes.checks import CachedChecks
from gateway.routes.metrics import metrics
from tests import settings as test_settings
from tests.support.api import create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import ROOT, Gateway, Worker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
STANDARD = re.compile(r"^(process|python)_")  # prometheus_client's own process and runtime collectors
LIVE = {"method": "GET", "route": "/health/live", "status": "200"}


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return parse(response.text)


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
        return value(samples, "opengovfood_commands_poison_total", command="item.create") > value(
            worker_before, "opengovfood_commands_poison_total", command="item.create"
        )

    worker_after = await eventually(lambda: scrape(worker_url()), poisoned, deadline_s=10)
    gateway_after = await scrape(gateway_url)

    def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    created = {"method": "POST", "route": "/api/v1/items", "status": "201"}
    assert delta(gateway_before, gateway_after, "opengovfood_http_requests_total", **created) == 3
    latency = {"method": "POST", "route": "/api/v1/items"}
    assert delta(gateway_before, gateway_after, "opengovfood_http_request_duration_seconds_count", **latency) == 3
    assert value(gateway_after, "opengovfood_http_request_duration_seconds_bucket", **latency, le="+Inf") >= 3
    assert ("opengovfood_replica_lag_bytes", frozenset()) in gateway_after
    assert ("opengovfood_replica_lag_seconds", frozenset()) in gateway_after

    applied = {"command": "item.create", "status": "applied"}
    assert delta(worker_before, worker_after, "opengovfood_commands_total", **applied) == 3
    assert delta(worker_before, worker_after, "opengovfood_commands_poison_total", command="item.create") == 1
    assert delta(worker_before, worker_after, "opengovfood_command_apply_seconds_count", command="item.create") == 3
    publish_to_commit = "opengovfood_command_publish_to_commit_seconds_count"
    assert delta(worker_before, worker_after, publish_to_commit, command="item.create") == 3
    assert delta(worker_before, worker_after, "opengovfood_batch_size_sum") == 3
    assert delta(worker_before, worker_after, "opengovfood_batch_size_count") >= 1

    for samples in (gateway_after, worker_after):
        ours = {name for name, _ in samples if not STANDARD.match(name)}
        assert ours
        assert all(name.startswith("opengovfood_") for name in ours), sorted(ours)
        assert not any(name.startswith("opengovfood_queue_") for name in ours)  # RabbitMQ exports those


def _per_process(directory: Path, scratch: Path) -> dict[str, float]:
    """/health/live requests counted by each gateway process, from its own file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        counts[path.stem] = value(parse(generate_latest(registry).decode()), "opengovfood_http_requests_total", **LIVE)
    return counts


async def test_one_scrape_counts_the_requests_of_every_gateway_process(stack: object, tmp_path: Path) -> None:
    with Gateway(env={"GATEWAY_WORKERS": "2"}) as gateway:
        directory = Path(gateway.env["PROMETHEUS_MULTIPROC_DIR"])
        fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: either process may accept
        async with httpx.AsyncClient(base_url=gateway.url, limits=fresh, timeout=10) as http:
            sent = 0

            async def round_of_requests() -> dict[str, float]:
                nonlocal sent
                answers = await asyncio.gather(*(http.get("/health/live") for _ in range(20)))
                assert all(answer.status_code == 200 for answer in answers)
                sent += len(answers)
                return _per_process(directory, tmp_path)

            counts = await eventually(round_of_requests, lambda c: sum(n > 0 for n in c.values()) == 2)
            assert sum(counts.values()) == sent
            for _ in range(6):  # whichever process answers the scrape, it sees them all
                scraped = parse((await http.get("/metrics")).text)
                assert value(scraped, "opengovfood_http_requests_total", **LIVE) == sent
                assert ("opengovfood_replica_lag_bytes", frozenset()) in scraped  # one value, the newest sample


class CountingProbe:
    """A StatusProbe that counts the lag queries it is asked for."""

    def __init__(self) -> None:
        self.queries = 0

    async def replica_lag(self) -> dict[str, Any]:
        self.queries += 1
        return {"bytes": 1000 + self.queries, "seconds": 0.5, "paused": False}


async def test_scrapes_sample_the_replica_lag_once_per_second_at_most() -> None:
    app = FastAPI()
    probe = CountingProbe()
    app.state.services = SimpleNamespace(status=probe)
    app.state.ready_checks = CachedChecks(ttl_s=0.3)  # what /health/ready shares (1 s in the gateway)
    app.add_api_route("/metrics", metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        scrapes = [parse((await http.get("/metrics")).text) for _ in range(5)]
        assert probe.queries == 1
        assert all(value(samples, "opengovfood_replica_lag_bytes") == 1001 for samples in scrapes)
        later = await eventually(
            lambda: _scrape_app(http), lambda s: value(s, "opengovfood_replica_lag_bytes") == 1002, deadline_s=5
        )
    assert probe.queries == 2
    assert value(later, "opengovfood_replica_lag_seconds") == 0.5


async def _scrape_app(http: httpx.AsyncClient) -> Samples:
    return parse((await http.get("/metrics")).text)


async def test_prometheus_gets_queue_depths_and_consumers_from_rabbitmq(stack: object) -> None:
    """The scrape job in deploy/prometheus, pointed at this machine's broker (services.sh enables the plugin)."""
    jobs = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    (queues,) = [job for job in jobs if job.get("metrics_path") == "/metrics/detailed"]
    params = [("family", family) for family in queues["params"]["family"]] + [("vhost", test_settings.VHOST)]
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get("http://127.0.0.1:15692/metrics/detailed", params=params)
    assert response.status_code == 200
    samples = parse(response.text)
    partition = {"vhost": test_settings.VHOST, "queue": "opengovfood.commands.p0"}
    assert value(samples, "rabbitmq_detailed_queue_consumers", **partition) >= 1
    dead_letters = {"vhost": test_settings.VHOST, "queue": "opengovfood.dead-letter"}
    assert ("rabbitmq_detailed_queue_messages_ready", frozenset(dead_letters.items())) in samples
