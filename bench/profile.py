"""`python -m bench.profile worker|gateway|import|reads`: where a path spends its time.

Starts the stack like bench.run, drives it (bus `item.create` for the worker, `POST /api/v1/items`
for the gateway, a CSV upload for import) and samples the process with py-spy; prints the frames with the most samples,
inclusive (what a frame and its callees cost) and by our own source lines.
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.cpu import Meter, per_unit
from bench.load import load
from bench.report import Table
from bench.run import (
    GATEWAY_ENV,
    HASH,
    BenchWorker,
    Sizes,
    bus_commands,
    create_users,
    http_writes,
    imports,
    readable_items,
)
from gateway.infrastructure.security import create_access_token
from shared.settings import get_settings
from tests.support.database import reset_database
from tests.support.processes import Gateway
from tests.support.rabbit import reset_vhost

PY_SPY = str(Path(sys.executable).parent / "py-spy")


def summarize(collapsed: Path, top: int = 25) -> str:
    """Inclusive samples per frame (counted once per stack) from py-spy's raw (collapsed) output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += samples
        ours = [f for f in frames if f.split("(")[-1].startswith(("worker/", "gateway/", "shared/"))]
        if ours:
            own[ours[-1]] += samples
    lines = [f"{total} samples", "inclusive (frame and callees):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["innermost frame of our own code:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


async def drive(
    target: str,
    worker: BenchWorker,
    gateway: Gateway,
    users: list[int],
    seconds: float,
    messages: int,
    svg: Path | None,
) -> Path:
    out = svg or Path(tempfile.mkdtemp()) / f"{target}.txt"
    assert gateway.process is not None
    ids = await readable_items(users[0]) if target == "reads" else []
    pid = gateway.process.pid if target in ("gateway", "reads") else worker.pid
    options = [
        "--subprocesses",
        "-d",
        str(int(seconds)),
        "-r",
        "200",
        "--format",
        "flamegraph" if svg else "raw",
        "-o",
        str(out),
    ]
    spy = await asyncio.create_subprocess_exec(
        PY_SPY, "record", "-p", str(pid), *options, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    table = Table()
    sizes = Sizes(load_s=seconds, warm_s=1, raw_s=1, bus_messages=messages, imports=())
    meter = Meter(gateway.process.pid, worker.pid)
    if target == "worker":
        await bus_commands(table, sizes, users, pipeline=0, meter=meter)
    elif target == "import":
        await imports(table, gateway.url, users[0], messages, 0, worker)
    elif target == "reads":
        token = [create_access_token(users[0], HASH, get_settings())]
        paths = [f"/api/v1/items/{i}" for i in ids]
        meter.start()
        result = await load(gateway.url, "GET", paths, token, concurrency=16, seconds=seconds)
        table.add("GET /items/{id} c=16", result.ok_per_s, "req/s")
        table.notes.append(f"CPU ms per request: {per_unit(meter.stop(), result.ok)}")
    else:
        await http_writes(table, sizes, gateway.url, users, pipeline=0, c=64, meter=meter)
    await spy.wait()
    print(table.render())
    return out


async def main(target: str, seconds: float, messages: int, svg: Path | None) -> None:
    await reset_database()
    await reset_vhost()
    users = await create_users(64)
    worker, gateway = BenchWorker(), Gateway(GATEWAY_ENV)
    worker.start()
    try:
        gateway.start()
        out = await drive(target, worker, gateway, users, seconds, messages, svg)
    finally:
        gateway.stop()
        worker.stop()
    if svg:
        print(f"flame graph in {svg}")
        return
    print(summarize(out))
    print(f"(collapsed stacks in {out}: feed them to a flame graph tool, or rerun with --svg)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", choices=["worker", "gateway", "import", "reads"])
    parser.add_argument("--seconds", type=float, default=15, help="sampling time (and HTTP load time)")
    parser.add_argument("--messages", type=int, default=5_000, help="bus commands (worker) or rows (import)")
    parser.add_argument("--svg", type=Path, help="write py-spy's flame graph here instead of printing a summary")
    args = parser.parse_args()
    asyncio.run(main(args.target, args.seconds, args.messages, args.svg))
