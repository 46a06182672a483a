"""The real worker and gateway as child processes, so tests can also kill and restart them."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import httpx

from shared.topology import partition_queue_name
from tests import settings as test_settings

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".test-logs" / test_settings.DATABASE
MANAGEMENT_URL = test_settings.MANAGEMENT_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def queue_info(queue: str, vhost: str = test_settings.VHOST) -> dict[str, int]:
    """A queue's figures from the RabbitMQ management API ({} while it does not exist)."""
    url = f"{MANAGEMENT_URL}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    response = httpx.get(url, auth=("guest", "guest"), timeout=5)
    return dict(response.json()) if response.status_code == 200 else {}


def partitions_consumed(partitions: int, vhost: str = test_settings.VHOST) -> bool:
    """Every partition queue of the vhost has a consumer."""
    return all(queue_info(partition_queue_name(p), vhost).get("consumers", 0) > 0 for p in range(partitions))


def answers_ready(url: str) -> bool:
    """The gateway at `url` answers /health/ready with 200."""
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition, deadline_s: float, what: str, interval_s: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Poll condition() until it is true; fail with `what` after deadline_s."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval_s)


class Service:
    """A child process with the test environment and its output in .test-logs/<name>.log."""

    name = "service"

    def __init__(self, env: dict[str, str] | None = None, name: str | None = None) -> None:
        self.env = {**os.environ, **test_settings.ENV, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.name = name or self.name
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, deadline_s: float = 30.0) -> None:
        self.spawn()
        self.wait_ready(deadline_s)

    def spawn(self) -> None:
        """Start the process without waiting (to start several at once)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=log)

    def wait_ready(self, deadline_s: float = 30.0) -> None:
        wait_until(lambda: self._alive() and self.ready(), deadline_s, f"{self.name} to be ready")

    def _alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see {self.log_path}")
        return True

    def stop(self, sig: int = signal.SIGTERM, deadline_s: float = 30.0) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(sig)
        try:
            code = self.process.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> "Service":
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def ensure_database_roles() -> None:
    """Create the least-privilege roles and grant them on the test database (idempotent)."""
    subprocess.run(
        [
            "psql", "-h", "127.0.0.1", "-p", str(test_settings.PRIMARY_PORT), "-U", "postgres",
            "-d", test_settings.DATABASE, "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-f", str(ROOT / "scripts" / "db-roles.sql"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


class Worker(Service):
    name = "worker"

    def __init__(self, env: dict[str, str] | None = None, name: str | None = None) -> None:
        super().__init__({"DATABASE_URL": test_settings.WORKER_DATABASE_URL, **(env or {})}, name)

    def spawn(self) -> None:
        ensure_database_roles()
        super().spawn()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "worker"]

    def ready(self) -> bool:
        """Every partition queue has a consumer."""
        return partitions_consumed(int(test_settings.ENV["COMMAND_PARTITIONS"]))


class Gateway(Service):
    name = "gateway"

    def __init__(self, env: dict[str, str] | None = None, name: str | None = None) -> None:
        roles = {
            "DATABASE_URL": test_settings.GATEWAY_DATABASE_URL,
            "READ_DATABASE_URL": test_settings.GATEWAY_READ_DATABASE_URL,
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__({**roles, **(env or {})}, name)
        if int(self.env.get("GATEWAY_WORKERS", "1")) > 1:  # every process's metrics, for one scrape
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(LOGS / f"gateway-{self.port}.metrics")

    def spawn(self) -> None:
        ensure_database_roles()
        if directory := self.env.get("PROMETHEUS_MULTIPROC_DIR"):
            shutil.rmtree(directory, ignore_errors=True)  # no counts of an earlier start
            os.makedirs(directory)
        super().spawn()

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
            "--workers", self.env.get("GATEWAY_WORKERS", "1"),
        ]  # fmt: skip

    def ready(self) -> bool:
        return answers_ready(self.url)
