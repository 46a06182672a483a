"""CPU time spent by each part of the system during a measurement, from /proc (user + system).

So a reader can predict the rate on N cores: CPU milliseconds per applied row, per process group
(gateway with its uvicorn workers, worker, RabbitMQ, PostgreSQL primary and replica with every
backend). A process that ends within the window is missed (its time leaves /proc with it): the
services keep their connections pooled, so their backends live through a measurement.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, CPU ticks used, command name) of a process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), name


def _processes() -> Iterator[tuple[int, int, int, str]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            yield int(entry), *stat


def _tree(root: int, table: dict[int, tuple[int, int, str]]) -> set[int]:
    """A process and all its descendants."""
    members, grew = {root}, True
    while grew:
        added = {pid for pid, (parent, _, _) in table.items() if parent in members} - members
        members |= added
        grew = bool(added)
    return members


@dataclass(frozen=True)
class Snapshot:
    ticks: dict[int, int]  # pid -> CPU ticks
    groups: dict[str, set[int]]


def snapshot(gateway: int, worker: int) -> Snapshot:
    table = {pid: (parent, ticks, name) for pid, parent, ticks, name in _processes()}
    postmasters = {pid for pid, (_, _, name) in table.items() if name == "postgres" and table[pid][0] == 1}
    groups = {
        "gateway": _tree(gateway, table),
        "worker": _tree(worker, table),
        "RabbitMQ": {pid for pid, (_, _, name) in table.items() if name.startswith(("beam.smp", "erl_child"))},
        "PostgreSQL": set().union(*(_tree(pid, table) for pid in postmasters)) if postmasters else set(),
    }
    return Snapshot({pid: ticks for pid, (_, ticks, _) in table.items()}, groups)


def cpu_ms(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU milliseconds each group used between two snapshots."""
    used = {}
    for group, members in after.groups.items():
        ticks = sum(after.ticks.get(pid, 0) - before.ticks.get(pid, 0) for pid in members)
        used[group] = ticks * 1000 / TICKS
    return used


@dataclass
class Meter:
    """CPU per process group between start() and stop(), per unit of work."""

    gateway: int
    worker: int
    _before: Snapshot | None = None

    def start(self) -> None:
        self._before = snapshot(self.gateway, self.worker)

    def stop(self) -> dict[str, float]:
        assert self._before is not None
        return cpu_ms(self._before, snapshot(self.gateway, self.worker))


def per_unit(used: dict[str, float], units: int) -> str:
    """'gateway 0.31, worker 0.22, … = 1.10 ms per row: ~1,820/s on 2 cores'."""
    shares = {group: ms / max(units, 1) for group, ms in used.items()}
    total = sum(shares.values())
    parts = ", ".join(f"{group} {ms:.2f}" for group, ms in shares.items())
    predicted = 2 * 1000 / total if total else 0.0
    return f"{parts} = {total:.2f} ms of CPU each: at most ~{predicted:,.0f}/s on 2 cores, ~{predicted * 2:,.0f} on 4"
