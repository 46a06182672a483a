"""The local three-node cluster of scripts/cluster.sh, as the failover tests see and break it."""

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests import settings as test_settings
from tests.support.processes import ROOT

NODES = ["ogf1@localhost", "ogf2@localhost", "ogf3@localhost"]
DATA = Path(os.environ.get("CLUSTER_DIR", "/var/tmp/opengovfood-cluster"))


def management(path: str) -> Any:
    """GET from the management API of the first node that answers."""
    for port in test_settings.MANAGEMENT_PORTS:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/api/{path}", auth=("guest", "guest"), timeout=5)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return response.json()
    raise ConnectionError("no node's management API answers")


def queues(vhost: str = test_settings.VHOST) -> dict[str, dict[str, Any]]:
    return {queue["name"]: queue for queue in management(f"queues/{quote(vhost, safe='')}")}


def leaders(names: list[str]) -> Counter[str]:
    """How many of these queues each node leads."""
    found = queues()
    return Counter(found[name].get("leader", "") for name in names if name in found)


def kill(node: str) -> None:
    """kill -9 the node's Erlang VM (its pid file names it)."""
    pid = int((DATA / node.split("@")[0] / "pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)


def rabbitmqctl(node: str, *args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "-n", node, *args], check=True, capture_output=True, timeout=120)


def start_all() -> None:
    """Start whatever node is down, and have it rejoin (scripts/cluster.sh start is idempotent)."""
    subprocess.run([str(ROOT / "scripts" / "cluster.sh"), "start"], check=True, capture_output=True, timeout=300)
