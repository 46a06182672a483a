"""docker-compose.yml: valid for Debian's docker-compose 1.29, wired safely, and its services start.

Without a Docker engine here, the start is proved the nearest way: each application service's
command runs with compose's own environment, its host names pointed at the local services.
"""

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from shared.settings import Settings
from tests import settings as test_settings
from tests.support.compose import COMPOSE_FILE, ROOT, Local, command, required_variables, services
from tests.support.processes import LOGS, MANAGEMENT_URL, answers_ready, free_port, partitions_consumed, wait_until
from tests.support.scratch import grant_roles, recreate_database

SERVICES = {"rabbitmq", "postgres", "postgres-replica", "bus-provision", "migrate", "gateway", "worker"}
ONE_SHOTS = {"bus-provision", "migrate"}
LONG_RUNNING = SERVICES - ONE_SHOTS
BACKING = {
    "gateway": {"rabbitmq", "postgres-replica"},
    "worker": {"rabbitmq", "postgres"},
}
TEST_VALUES = {name: f"compose-test-{name.lower().replace('_', '-')}" for name in required_variables()}
LOCAL = Local(
    database=f"{test_settings.DATABASE}_compose",
    vhost=f"{test_settings.VHOST}_compose",
    user_prefix=f"{test_settings.VHOST}_compose",
)
ADMIN = ("guest", "guest")


def _rendered_config() -> dict[str, Any]:
    """Run `docker-compose config` and return the parsed, interpolated file."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run scripts/apt-deps.sh")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **TEST_VALUES},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    return {name: spec.get("condition", "") for name, spec in depends.items()}


def test_compose_config_wires_the_stack() -> None:
    rendered = _rendered_config()["services"]
    assert SERVICES <= set(rendered), f"missing services: {SERVICES - set(rendered)}"
    assert command(rendered["migrate"]) == ["alembic", "upgrade", "head"]
    for name in LONG_RUNNING:
        assert rendered[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, backing in BACKING.items():
        conditions = _conditions(rendered[name])
        for one_shot in ONE_SHOTS:
            assert conditions.get(one_shot) == "service_completed_successfully", f"{name} -> {one_shot}"
        for dependency in backing:
            assert conditions.get(dependency) == "service_healthy", f"{name} -> {dependency}"
    ours = services(TEST_VALUES)  # the interpolation the start test relies on is compose's
    for name in ONE_SHOTS | set(BACKING):
        assert ours[name]["environment"] == rendered[name]["environment"], name


def test_brokers_and_databases_as_documented() -> None:
    """RabbitMQ 4.2 with its AMQP port published, statement statistics, a replica that holds a slot."""
    compose = services(TEST_VALUES)
    assert compose["rabbitmq"]["image"] == "rabbitmq:4.2-management"
    assert "5672:5672" in compose["rabbitmq"]["ports"]
    network = yaml.safe_load(COMPOSE_FILE.read_text())["networks"]["default"]
    assert network["name"] == "opengovfood"
    assert "shared_preload_libraries=pg_stat_statements" in compose["postgres"]["command"]
    replica = (ROOT / "deploy/postgres/replica-entrypoint.sh").read_text()
    assert '-S "$REPLICA_SLOT"' in replica
    assert 'primary_slot_name="$REPLICA_SLOT"' in replica
    assert command(compose["gateway"], "healthcheck")[:2] == ["opengovfood", "health"]  # /health/ready


def test_prometheus_scrapes_the_gateway_the_worker_and_rabbitmq() -> None:
    assert "prometheus" in services(TEST_VALUES)
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for config in job["static_configs"] for t in config["targets"]}
    assert {"gateway:8000", "worker:9464", "rabbitmq:15692"} <= targets
    assert "rabbitmq_prometheus" in (ROOT / "deploy/rabbitmq/enabled_plugins").read_text()


def test_compose_env_writes_every_secret_once(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    script = [str(ROOT / "scripts/compose-env.sh")]
    subprocess.run(script, env={**os.environ, "ENV_FILE": str(env_file)}, check=True, capture_output=True)
    first = env_file.read_text()
    written = dict(line.split("=", 1) for line in first.splitlines())
    assert required_variables() <= set(written)
    assert all(len(value) == 64 for value in written.values())
    subprocess.run(script, env={**os.environ, "ENV_FILE": str(env_file)}, check=True, capture_output=True)
    assert env_file.read_text() == first


@pytest.fixture
def local_services() -> Iterator[Local]:
    """What compose's primary gets at initdb (deploy/postgres/init-roles.sh) in a database of this test."""
    asyncio.run(recreate_database(LOCAL.database))
    grant_roles(LOCAL.database)
    yield LOCAL
    for user in ("opengovfood-gateway", "opengovfood-worker"):
        httpx.delete(f"{MANAGEMENT_URL}/api/users/{quote(LOCAL.user(user), safe='')}", auth=ADMIN, timeout=10)
    httpx.delete(f"{MANAGEMENT_URL}/api/vhosts/{quote(LOCAL.vhost, safe='')}", auth=ADMIN, timeout=10)
    asyncio.run(recreate_database(LOCAL.database, create=False))


def _environment(service: dict[str, Any], **own: str) -> dict[str, str]:
    """Compose's environment for the service, made local, and nothing of this test process's."""
    base = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "LANG": "C.UTF-8"}
    return {**base, **LOCAL.environment(service["environment"]), **own}


@contextmanager
def _running(name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"compose-{name}.log").open("wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _alive_and(process: subprocess.Popen[bytes], name: str, check: Any) -> Any:
    def condition() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited {process.returncode}; see {LOGS}/compose-{name}.log")
        return bool(check())

    return condition


def _consumes() -> bool:
    """Every partition queue (compose keeps the default count) has a consumer."""
    return partitions_consumed(Settings.model_fields["command_partitions"].default, LOCAL.vhost)


@pytest.mark.postgres
@pytest.mark.rabbit
def test_each_application_service_starts_with_compose_environment(local_services: Local, tmp_path: Path) -> None:
    compose = services(TEST_VALUES)
    app = tmp_path / "app"  # the image's /app: alembic.ini and the migrations
    shutil.copytree(ROOT / "migrations", app / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "alembic.ini", app / "alembic.ini")
    for one_shot in ("bus-provision", "migrate"):
        env = _environment(compose[one_shot])
        result = subprocess.run(
            command(compose[one_shot]), env=env, cwd=app, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{one_shot}: {result.stdout}\n{result.stderr}"

    port = free_port()
    gateway_argv = [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(arg, arg) for arg in command(compose["gateway"])]
    gateway_env = _environment(compose["gateway"], GATEWAY_URL=f"http://127.0.0.1:{port}")
    worker_env = _environment(
        compose["worker"], WORKER_METRICS_PORT=str(free_port()), WORKER_HEARTBEAT_FILE=str(tmp_path / "worker.alive")
    )
    with (
        _running("worker", command(compose["worker"]), worker_env, app) as worker,
        _running("gateway", gateway_argv, gateway_env, app) as gateway,
    ):
        wait_until(_alive_and(worker, "worker", _consumes), 60, "the worker to consume every partition")
        wait_until(
            _alive_and(gateway, "gateway", lambda: answers_ready(gateway_env["GATEWAY_URL"])), 60, "/health/ready"
        )
        for name, env in (("worker", worker_env), ("gateway", gateway_env)):
            check = subprocess.run(
                command(compose[name], "healthcheck"), env=env, cwd=app, capture_output=True, timeout=60
            )
            assert check.returncode == 0, f"{name}'s healthcheck: {check.stdout!r} {check.stderr!r}"
