"""On the local three-node cluster (`make test-cluster`): queues grown to three members, then the history
checker's load (tests/faults/test_history_checker.py, imported) while nodes die.

The node leading most partition queues is killed (-9); while it is down a second node stops for
10 s, so the queues lose their majority: commands are answered 503, none is confirmed. Then both
come back. Later one of the two standbys the gateway reads from stops for 10 s: reads go to the
other. The checker proves from the records that every acknowledged command was applied exactly
once, in per-owner order, its event relayed; no answer but 201/202/503 (429), every read 200; and
the failover table gives, per fault, the longest stretch without an accepted write.
"""

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import httpx
import pytest

from shared.topology import (
    DEAD_LETTER_QUEUE_NAME,
    dead_letter_queue,
    declare_queue,
    declare_topology,
    partition_queue,
    partition_queue_name,
)
from tests import settings as test_settings
from tests.cluster import nodes
from tests.cluster.test_standbys import replica2
from tests.faults.test_history_checker import (
    History,
    _event_queue,
    _follow_events,
    _publisher,
    _writer,
    check_on_primary,
)
from tests.support.api import sign_up
from tests.support.polling import eventually
from tests.support.processes import ROOT, Gateway, Worker, wait_until

pytestmark = pytest.mark.rabbit
PARTITIONS = int(test_settings.ENV["COMMAND_PARTITIONS"])
OURS = [partition_queue_name(p) for p in range(PARTITIONS)] + [DEAD_LETTER_QUEUE_NAME]
SECONDS = float(os.environ.get("CLUSTER_SECONDS", "60"))
WRITERS = 4
MAJORITY_LOST_S = 10.0
STANDBY_DOWN_S = 10.0
NORMAL_AGAIN_S = 30.0  # the promise: accepted writes again within this long after a node's death


async def test_single_member_queues_are_kept_then_grown_to_three(vhost: str) -> None:
    """Queues first declared on one node keep one member; declaring the topology accepts them, and
    `opengovfood bus grow` gives each three."""
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        version = "3.10.8"
        single = {"x-quorum-initial-group-size": 1}
        for queue in [dead_letter_queue(version)] + [partition_queue(p, version) for p in range(PARTITIONS)]:
            await declare_queue(channel, type(queue)(queue.name, {**queue.arguments, **single}))
    await eventually(_members, lambda found: found == dict.fromkeys(OURS, 1), 30)  # the API shows them late
    await declare_topology(test_settings.RABBIT_URLS, PARTITIONS)  # PRECONDITION_FAILED for each: kept as is
    grown = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "opengovfood"), "bus", "grow", "--vhost", test_settings.VHOST],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "RABBIT_MANAGEMENT_URL": f"http://guest:guest@127.0.0.1:{test_settings.MANAGEMENT_PORTS[0]}"},
    )  # fmt: skip
    assert grown.returncode == 0, grown.stderr
    await eventually(_members, lambda found: found == dict.fromkeys(OURS, 3), 30)


async def _members() -> dict[str, int]:
    """How many members each of our queues has, as the management API shows (a few seconds late)."""
    found = await asyncio.to_thread(nodes.queues)
    return {name: len(found[name].get("members", [])) for name in OURS if name in found}


@dataclass
class Timeline:
    """When each write was sent and answered, and when each fault began."""

    writes: list[tuple[float, float, int]] = field(default_factory=list)  # sent, answered, status
    reads: list[int] = field(default_factory=list)  # statuses of the reads
    faults: list[tuple[str, float]] = field(default_factory=list)

    def longest_unavailability(self, start: float, end: float) -> float:
        """The longest stretch in [start, end] without an accepted (2xx) write answered."""
        accepted = sorted(answered for _, answered, status in self.writes if 200 <= status < 300)
        marks = [start] + [t for t in accepted if start < t < end] + [min(end, max(accepted, default=end))]
        return max(b - a for a, b in zip(marks, marks[1:], strict=False)) if len(marks) > 1 else 0.0

    def accepted_between(self, start: float, end: float) -> int:
        """Writes sent after `start` and accepted before `end`."""
        return sum(
            1 for sent, answered, status in self.writes if 200 <= status < 300 and sent > start and answered < end
        )


async def _faults(timeline: Timeline, history: History, started: float) -> tuple[float, float]:
    """Kill -9 the node leading most partition queues; stop a second for 10 s; bring both back.
    Returns the window in which the majority was lost."""

    async def at(second: float) -> None:  # the schedule of faults, not a synchronisation
        await asyncio.sleep(max(0.0, started + second - time.monotonic()))

    await at(SECONDS * 0.15)
    killed = nodes.leaders(OURS).most_common(1)[0][0]
    nodes.kill(killed)
    timeline.faults.append((f"kill -9 {killed} (leader of most queues)", time.monotonic()))
    history.faults.append(f"kill -9 {killed}")
    await at(SECONDS * 0.35)
    stopped = next(node for node in nodes.NODES if node != killed)
    await asyncio.to_thread(nodes.rabbitmqctl, stopped, "stop_app")
    lost_from = time.monotonic()
    timeline.faults.append((f"stop {stopped} {MAJORITY_LOST_S:.0f} s (majority lost)", lost_from))
    history.faults.append(f"stop {stopped}")
    await asyncio.sleep(MAJORITY_LOST_S)  # how long the second node stays down
    lost_until = time.monotonic()
    await asyncio.to_thread(nodes.rabbitmqctl, stopped, "start_app")
    timeline.faults.append((f"{stopped} started again, {killed} restarted", time.monotonic()))
    await asyncio.to_thread(nodes.start_all)
    history.faults.append(f"{killed} restarted")
    await at(SECONDS * 0.7)
    await asyncio.to_thread(replica2, "stop")
    timeline.faults.append(
        (f"standby on port {test_settings.REPLICA2_PORT} stopped {STANDBY_DOWN_S:.0f} s", time.monotonic())
    )
    history.faults.append("standby stopped")
    await asyncio.sleep(STANDBY_DOWN_S)  # how long the standby stays down
    await asyncio.to_thread(replica2, "start")
    timeline.faults.append(("standby started again", time.monotonic()))
    return lost_from, lost_until


async def test_nodes_killed_under_load_lose_nothing(stack: tuple[Worker, Gateway]) -> None:
    worker, gateway = stack
    wait_until(lambda: all(len(q["members"]) == 3 for q in map(nodes.queues().get, OURS) if q), 30, "3 members")
    history, timeline, writing, followed = History(), Timeline(), asyncio.Event(), asyncio.Event()

    async def sent(request: httpx.Request) -> None:
        request.extensions["sent"] = time.monotonic()

    async def answered(response: httpx.Response) -> None:
        if response.request.method == "POST":
            timeline.writes.append((response.request.extensions["sent"], time.monotonic(), response.status_code))
        else:
            timeline.reads.append(response.status_code)

    queue_name = await _event_queue()
    follower = asyncio.create_task(_follow_events(queue_name, history, followed))
    hooks = {"request": [sent], "response": [answered]}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, event_hooks=hooks) as http:
        clients = [await sign_up(http) for _ in range(WRITERS + 1)]
        load = [asyncio.create_task(_writer(http, c, n, history, writing)) for n, c in enumerate(clients[:WRITERS])]
        load.append(asyncio.create_task(_publisher(clients[WRITERS], history, writing)))
        started = time.monotonic()
        lost_from, lost_until = await _faults(timeline, history, started)
        await asyncio.sleep(max(0.0, SECONDS - (time.monotonic() - started)))  # the run's length
        writing.set()
        await asyncio.wait_for(asyncio.gather(*load), 180)
    ended = time.monotonic()
    anomalies = await check_on_primary(history, followed, follower)
    _print_table(history, timeline, anomalies, ended)
    windows = [(name, t, next((u for _, u in timeline.faults if u > t), ended)) for name, t in timeline.faults]
    unavailable = {name: timeline.longest_unavailability(t, end) for name, t, end in windows}
    assert set(anomalies.values()) == {0}, anomalies
    assert timeline.accepted_between(lost_from + 2.0, lost_until) == 0  # past the publish timeout: no quorum, no 202
    assert set(history.answers) <= {201, 202, 429, 503}, history.answers
    assert set(timeline.reads) == {200}, Counter(timeline.reads)  # the stopped standby was skipped
    assert history.answers[503] > 0  # the majority loss was seen
    assert max(unavailable.values()) < NORMAL_AGAIN_S + MAJORITY_LOST_S, unavailable


def _print_table(history: History, timeline: Timeline, anomalies: dict[str, int], ended: float) -> None:
    operations = history.http_writes + history.bus_publishes + history.reads
    print(
        f"\nfailover on RabbitMQ 3.10.8, 3 nodes: {operations} operations ({history.http_writes} HTTP writes "
        f"{dict(history.answers)}, {history.bus_publishes} bus publishes, {history.reads} reads with a token, "
        f"{len(history.events)} events)\n"
        f"lost {anomalies['lost']}, doubled {anomalies['duplicated']}, out of order {anomalies['out of order']}, "
        f"events missing {anomalies['events missing']}, events out of order {anomalies['events out of order']}, "
        f"stale reads {anomalies['stale reads']}\n"
        f"{'fault':<55} {'longest unavailability (s)':>27}"
    )
    for number, (name, began) in enumerate(timeline.faults):
        end = timeline.faults[number + 1][1] if number + 1 < len(timeline.faults) else ended
        print(f"{name:<55} {timeline.longest_unavailability(began, end):>27.1f}")
