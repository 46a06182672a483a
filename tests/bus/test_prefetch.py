"""The prefetch each partition consumer of the real worker has on RabbitMQ: WORKER_PREFETCH, capped at
its share of WORKER_INFLIGHT_BYTES (÷ the largest command × COMMAND_PARTITIONS)."""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from shared.topology import partition_queue_name
from tests import settings as test_settings
from tests.support.processes import Worker, wait_until
from tests.support.rabbit import vhost_of_its_own

VHOST = f"{test_settings.VHOST}_prefetch"
URL = f"amqp://guest:guest@127.0.0.1:5672/{quote(VHOST, safe='')}"
MANAGEMENT = "http://127.0.0.1:15672/api"
AUTH = ("guest", "guest")
PARTITIONS = 4
MIB = 2**20


def _prefetch_by_queue() -> dict[str, int]:
    """Each queue of our vhost → the prefetch_count of its consumer, as the broker has it."""
    response = httpx.get(f"{MANAGEMENT}/consumers/{quote(VHOST, safe='')}", auth=AUTH, timeout=5)
    response.raise_for_status()
    return {consumer["queue"]["name"]: consumer["prefetch_count"] for consumer in response.json()}


class VhostWorker(Worker):
    """A worker of the test database on a vhost of its own (the stack's worker keeps its partitions)."""

    def __init__(self, env: dict[str, str], heartbeat: Path) -> None:
        base = {"RABBIT_URL": URL, "COMMAND_PARTITIONS": str(PARTITIONS), "WORKER_METRICS_PORT": "0"}
        super().__init__({**base, "WORKER_HEARTBEAT_FILE": str(heartbeat), **env}, "worker-prefetch")

    def ready(self) -> bool:
        return len(_prefetch_by_queue()) == PARTITIONS


@pytest.fixture(scope="module")
def own_vhost(database: str) -> Iterator[str]:
    with vhost_of_its_own(VHOST) as url:
        yield url


@pytest.mark.parametrize(
    ("inflight_bytes", "expected"),
    [
        (10 * MIB, 2),  # 10 MiB ÷ (1.0625 MiB × 4) = 2.35
        (None, 240),  # the default, 1 GiB ÷ (1.0625 MiB × 4) = 240.9: below the default WORKER_PREFETCH
        (2048 * MIB, 400),  # 481.9: WORKER_PREFETCH (400) is the smaller
    ],
)
def test_worker_inflight_bytes_caps_each_partition_consumers_prefetch(
    own_vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inflight_bytes: int | None, expected: int
) -> None:
    monkeypatch.delenv("WORKER_INFLIGHT_BYTES", raising=False)
    monkeypatch.delenv("WORKER_PREFETCH", raising=False)
    env = {} if inflight_bytes is None else {"WORKER_INFLIGHT_BYTES": str(inflight_bytes)}
    with VhostWorker(env, tmp_path / "alive"):  # started: a consumer on every partition
        assert _prefetch_by_queue() == {partition_queue_name(p): expected for p in range(PARTITIONS)}
    wait_until(lambda: not _prefetch_by_queue(), 10, "the worker's consumers to go")
