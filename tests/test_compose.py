"""docker-compose.yml is valid for Debian's docker-compose 1.29 and wires the stack safely."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"rabbitmq", "postgres", "postgres-replica", "migrate", "gateway", "worker"}
LONG_RUNNING = SERVICES - {"migrate"}
BACKING = {
    "gateway": {"rabbitmq", "postgres-replica"},
    "worker": {"rabbitmq", "postgres"},
}


def _rendered_config() -> dict[str, Any]:
    """Run `docker-compose config` and return the parsed, interpolated file."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run scripts/apt-deps.sh")
    env = {**os.environ, "SECRET_KEY": "x", "RABBITMQ_PASSWORD": "y"}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
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
    services = _rendered_config()["services"]

    assert SERVICES <= set(services), f"missing services: {SERVICES - set(services)}"

    command = services["migrate"]["command"]
    command = command.split() if isinstance(command, str) else command
    assert command == ["alembic", "upgrade", "head"]

    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    for name, backing in BACKING.items():
        conditions = _conditions(services[name])
        assert conditions.get("migrate") == "service_completed_successfully", name
        for dependency in backing:
            assert conditions.get(dependency) == "service_healthy", f"{name} -> {dependency}"


def test_prometheus_scrapes_the_gateway_and_the_worker() -> None:
    services = _rendered_config()["services"]
    assert "prometheus" in services
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for config in job["static_configs"] for t in config["targets"]}
    assert {"gateway:8000", "worker:9464"} <= targets
