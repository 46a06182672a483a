"""`opengovfood bus grow`: every partition queue and the dead-letter queue get members on N nodes.

A quorum queue first declared on a single node keeps its one member when nodes join it in a cluster,
and its declaration cannot ask for more (arguments never change in place: shared/topology.py keeps
such a queue as it is). `rabbitmq-queues grow NODE` adds a member on NODE to every matching queue,
so this runs where rabbitmq-queues reaches the cluster (its Erlang cookie); the management API says
which nodes run and where each queue has members.
"""

import re
import subprocess
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

OURS = r"^opengovfood\.(commands\.p[0-9]+|dead-letter)$"  # the partition queues and the dead-letter queue


class ManagementApi(Protocol):
    def get(self, path: str) -> Any: ...


def members(management: ManagementApi, vhost: str) -> dict[str, list[str]]:
    """Our quorum queues of the vhost, each with the nodes it has members on."""
    queues = management.get(f"queues/{quote(vhost, safe='')}")
    return {
        queue["name"]: sorted(queue.get("members") or [])
        for queue in queues
        if re.match(OURS, queue["name"]) and queue.get("type") == "quorum"
    }


def running_nodes(management: ManagementApi) -> list[str]:
    return sorted(node["name"] for node in management.get("nodes") if node.get("running"))


def grow(
    management: ManagementApi, vhost: str, wanted: int, progress: Callable[[str], None] = print
) -> dict[str, list[str]]:
    """Add members until each queue has `wanted` (at most the running nodes); return the queues still short."""
    nodes = running_nodes(management)
    goal = min(wanted, len(nodes))
    for node in nodes:
        short = [name for name, on in members(management, vhost).items() if len(on) < goal and node not in on]
        if not short:
            continue
        progress(f"{node}: adding a member of {len(short)} queues")
        subprocess.run(
            ["rabbitmq-queues", "-q", "-n", node, "grow", node, "all",
             "--vhost-pattern", f"^{re.escape(vhost)}$", "--queue-pattern", OURS],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    now = members(management, vhost)
    for name, on in sorted(now.items()):
        progress(f"{name}: {len(on)} members ({', '.join(on)})")
    return {name: on for name, on in now.items() if len(on) < goal}
