"""`make bench` (`python -m bench.run [--quick]`): start the system on its own database and vhost,
load it, and print one table beside raw baselines measured in the same run."""

import os

os.environ.setdefault("TEST_DATABASE", "ogf_bench")
os.environ.setdefault("TEST_VHOST", "ogf_bench")

from tests import settings as test_settings  # noqa: E402

test_settings.apply()  # before anything reads the settings

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import aio_pika  # noqa: E402
import asyncpg  # noqa: E402
import httpx  # noqa: E402
import uvloop  # noqa: E402

from bench import baselines, cluster, event_log, gateway_instructions  # noqa: E402
from bench.checkouts import CheckoutGateway  # noqa: E402
from bench.cpu import Meter, per_unit  # noqa: E402
from bench.load import load  # noqa: E402
from bench.report import Table  # noqa: E402
from gateway.infrastructure.security import create_access_token  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.topology import COMMANDS_EXCHANGE_NAME  # noqa: E402
from tests.support.bus import command_message  # noqa: E402
from tests.support.database import ROOT, reset_database, wait_for_replica  # noqa: E402
from tests.support.processes import Gateway, Worker  # noqa: E402
from tests.support.rabbit import reset_vhost  # noqa: E402

HASH = "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0$YmVuY2hiZW5jaGJlbmNoYmVuY2g"
# 64 users share the load: a per-user limit that is never reached here.
# Two gateway processes, one per core (the template compared in issue 12 ran two workers too).
GATEWAY_ENV = {
    "WRITE_RATE_PER_CALLER": "500/second",
    "DB_POOL_SIZE": "20",
    "GATEWAY_WORKERS": os.environ.get("BENCH_GATEWAY_WORKERS", "2"),
}


@dataclass(frozen=True)
class Sizes:
    load_s: float
    warm_s: float
    raw_s: float
    bus_messages: int
    imports: tuple[int, ...]


FULL = Sizes(load_s=10, warm_s=2, raw_s=3, bus_messages=20_000, imports=(100_000, 1_000_000))
QUICK = Sizes(load_s=3, warm_s=1, raw_s=1, bus_messages=5_000, imports=(20_000, 100_000))


def peak_mib(pid: int) -> float:
    """VmHWM: the process's peak resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def create_users(count: int) -> list[int]:
    conn = await asyncpg.connect(test_settings.PRIMARY_DSN)
    try:
        rows = await conn.fetch(
            'INSERT INTO "user" (email, hashed_password, full_name, is_active) '
            "SELECT 'bench-' || n || '@example.org', $1, 'Bench ' || n, true FROM generate_series(1, $2) AS n "
            "RETURNING id",
            HASH,
            count,
        )
    finally:
        await conn.close()
    return sorted(row["id"] for row in rows)


async def count_items(owners: list[int]) -> int:
    conn = await asyncpg.connect(test_settings.PRIMARY_DSN)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM item WHERE owner_id = ANY($1)", owners))
    finally:
        await conn.close()


async def wait_applied(owners: list[int], expected: int, deadline_s: float = 300.0) -> float:
    """Poll until the owners have `expected` items; the moment that happened (perf_counter)."""
    end = time.perf_counter() + deadline_s
    while (found := await count_items(owners)) < expected:
        if time.perf_counter() > end:
            raise TimeoutError(f"only {found} of {expected} applied")
        await asyncio.sleep(0.05)
    return time.perf_counter()


async def settled(
    owners: list[int], at_least: int, quiet_s: float = 1.0, deadline_s: float = 300.0
) -> tuple[int, float]:
    """Poll until the owners have at least `at_least` items and no more arrive for `quiet_s`:
    (items, when the last one arrived)."""
    end = time.perf_counter() + deadline_s
    count, changed = await count_items(owners), time.perf_counter()
    while count < at_least or time.perf_counter() - changed < quiet_s:
        if time.perf_counter() > end:
            raise TimeoutError(f"only {count} of {at_least} applied")
        await asyncio.sleep(0.05)
        if (now := await count_items(owners)) != count:
            count, changed = now, time.perf_counter()
    return count, changed


async def raw_baselines(table: Table, sizes: Sizes, owner: int) -> dict[str, float]:
    dsn, url = test_settings.PRIMARY_DSN, test_settings.RABBIT_URL
    raw = {
        "single": await baselines.insert_per_transaction(dsn, owner, sizes.raw_s),
        "many": await baselines.executemany(dsn, owner, sizes.raw_s),
        "copy": await baselines.copy(dsn, owner, sizes.raw_s),
        "publish": await baselines.publish(url, sizes.bus_messages, owner),
        "pipeline": await baselines.consume_with_group_commit(url, dsn, sizes.bus_messages, owner),
        "contract": await baselines.consume_with_group_commit(url, dsn, sizes.bus_messages, owner, events=True),
    }
    table.add("raw: asyncpg INSERT, one per transaction", raw["single"], "rows/s")
    table.add("raw: asyncpg executemany, 1,000 rows/tx", raw["many"], "rows/s")
    table.add("raw: asyncpg COPY", raw["copy"], "rows/s")
    table.add("raw: aio-pika publish, confirms, 1,000 in flight", raw["publish"], "msg/s")
    table.add("raw: aio-pika consumer + group commit, e2e", raw["pipeline"], "rows/s")
    table.add(
        "raw: the same + outcome, outbox row, confirmed event each", raw["contract"], "rows/s",
        baseline="bare pipeline", baseline_value=raw["pipeline"],
    )  # fmt: skip
    return raw


async def http_writes(
    table: Table, sizes: Sizes, url: str, owners: list[int], pipeline: float, c: int, meter: Meter, where: str = ""
) -> None:
    settings = get_settings()
    tokens = [create_access_token(owner, HASH, settings) for owner in owners]
    body = json.dumps({"title": f"bench http c{c}"})
    # Warm-up, not measured: connection pools fill and the callers' first lookups happen here.
    warm = await load(url, "POST", ["/api/v1/items"], tokens, body=body, concurrency=c, seconds=sizes.warm_s)
    before, _ = await settled(owners, warm.ok)
    meter.start()
    start = time.perf_counter()
    result = await load(url, "POST", ["/api/v1/items"], tokens, body=body, concurrency=c, seconds=sizes.load_s)
    backlog = result.ok - (await count_items(owners) - before)
    applied, last = await settled(owners, before + result.ok)
    used = meter.stop()
    applied -= before
    name = f"HTTP POST /items c={c}{where}"
    table.add(f"{name}: accepted", result.ok_per_s, "req/s")
    table.add(
        f"{name}: applied (rows in DB)", applied / (last - start), "rows/s",
        baseline="bare pipeline", baseline_value=pipeline, target="≥ 1,500 at c=64" if c == 64 else "",
    )  # fmt: skip
    table.add(f"{name}: accept p50", result.p50_ms, "ms")
    table.add(f"{name}: accept p99", result.p99_ms, "ms", target="≤ 50 ms at c=16" if c == 16 else "")
    table.notes.append(
        f"c={c}{where}: {result.requests:,} answers, {result.ok:,} 2xx, {result.requests - result.ok:,} other "
        f"(503: not confirmed in PUBLISH_TIMEOUT); {applied:,} rows applied; backlog at the end of the "
        f"{sizes.load_s:.0f} s window {max(backlog, 0):,}, "
        f"last row {last - start - result.seconds:.1f} s after it; load by {result.tool}"
    )
    table.notes.append(f"c={c}{where} CPU ms per applied row: {per_unit(used, applied)}")


REFUSED_TITLE = "bench refused by a trigger"


async def publish_creates(
    owners: list[int], count: int, refused_every: int = 0, already: int = 0
) -> tuple[float, float]:
    """item.create published straight onto the bus as the gateway's user, 1,000 in flight; every
    `refused_every`th (if any) with a title a database trigger refuses. (start, all applied) times;
    `already`: the owners' items before."""
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        window = asyncio.Semaphore(1_000)

        async def one(n: int) -> None:
            owner = owners[n % len(owners)]
            title = REFUSED_TITLE if refused_every and n % refused_every == refused_every - 1 else "bench bus"
            message = command_message({"owner_id": owner, "title": title}, actor=f"user:{owner}", owner=str(owner))
            async with window:
                await exchange.publish(message, routing_key="item.create", mandatory=True)

        start = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
    refused = count // refused_every if refused_every else 0
    return start, await wait_applied(owners, already + count - refused)


async def bus_commands(table: Table, sizes: Sizes, owners: list[int], pipeline: float, meter: Meter) -> None:
    meter.start()
    start, done = await publish_creates(owners, sizes.bus_messages)
    used = meter.stop()
    rate = sizes.bus_messages / (done - start)
    table.add(
        f"bus item.create x{sizes.bus_messages:,}: applied", rate, "rows/s",
        baseline="bare pipeline", baseline_value=pipeline, target="≥ 0.70×",
    )  # fmt: skip
    table.notes.append(f"bus: all applied after {done - start:.1f} s")
    table.notes.append(f"bus CPU ms per applied row (the publisher not counted): {per_unit(used, sizes.bus_messages)}")


REFUSE = (
    "CREATE OR REPLACE FUNCTION bench_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF NEW.title = '{REFUSED_TITLE}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;"
    "CREATE TRIGGER bench_refuse BEFORE INSERT ON item FOR EACH ROW EXECUTE FUNCTION bench_refuse()"
)


async def bus_with_refusals(table: Table, sizes: Sizes, owners: list[int]) -> None:
    """1 command in 100 refused by the database (a trigger, as only the database can): its batch-mates
    still commit together, so the rate stays near that of a run without refusals (the same trigger
    present, so that only the refusals differ). Issue 11, item 1."""
    conn = await asyncpg.connect(test_settings.PRIMARY_DSN)
    try:
        await conn.execute(REFUSE)
        half = len(owners) // 2
        start, done = await publish_creates(owners[:half], sizes.bus_messages)
        clean = sizes.bus_messages / (done - start)
        start, done = await publish_creates(owners[half:], sizes.bus_messages, refused_every=100)
    finally:
        await conn.execute("DROP TRIGGER IF EXISTS bench_refuse ON item")
        await conn.close()
    table.add(
        f"bus item.create x{sizes.bus_messages:,}, 1 in 100 refused by a trigger",
        sizes.bus_messages / (done - start), "cmds/s",
        baseline="none refused, same trigger", baseline_value=clean, target="≥ 0.80×",
    )  # fmt: skip


async def finished(import_id: uuid.UUID) -> asyncpg.Record:
    """The import job once it is completed."""
    conn = await asyncpg.connect(test_settings.PRIMARY_DSN)
    try:
        while True:
            job = await conn.fetchrow("SELECT * FROM import_job WHERE id = $1", import_id)
            if job is not None and job["state"] == "completed":
                return job
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as file:
        file.write("title,description,status\n")
        for n in range(rows):
            file.write(f"imported item {n},row {n} of the bench,{'pending' if n % 2 else 'in_progress'}\n")


async def _file_parts(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:  # noqa: ASYNC230 (64 KiB reads from the page cache)
        while part := file.read(65536):
            yield part


async def imports(table: Table, url: str, owner: int, rows: int, copy_rate: float, worker: "BenchWorker") -> None:
    """Upload a CSV of `rows` rows; compared with a raw COPY of as many rows into the same table, just before."""
    if copy_rate == 0:
        copy_rate = await baselines.copy_rows(test_settings.PRIMARY_DSN, owner, rows)
        table.add(f"raw: asyncpg COPY of {rows:,} rows (same table, just before)", copy_rate, "rows/s")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "items.csv"
        write_csv(path, rows)
        size_mib = path.stat().st_size / 2**20
        headers = {
            "Authorization": f"Bearer {create_access_token(owner, HASH, get_settings())}",
            "Content-Type": "text/csv",
        }
        start = time.perf_counter()
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            response = await http.post("/api/v1/imports", content=_file_parts(path), headers=headers)
        response.raise_for_status()
        accepted = time.perf_counter()
    import_id = uuid.UUID(response.json()["import_id"])
    job = await finished(import_id)
    done = time.perf_counter()
    assert job["applied"] == rows, dict(job)
    table.add(
        f"import {rows:,} rows (HTTP upload, CSV {size_mib:.0f} MiB)", rows / (done - start), "rows/s",
        baseline=f"raw COPY {rows:,}", baseline_value=copy_rate, target="≥ 0.70× at 1M" if rows >= 1_000_000 else "",
    )  # fmt: skip
    table.notes.append(
        f"import {rows:,}: upload answered 202 after {accepted - start:.1f} s, completed after {done - start:.1f} s; "
        f"worker peak so far {peak_mib(worker.pid):.0f} MiB"
    )


async def readable_items(owner: int, count: int = 1_000) -> list[int]:
    """`count` items of the owner, on the replica too; their ids."""
    conn = await asyncpg.connect(test_settings.PRIMARY_DSN)
    try:
        await conn.copy_records_to_table(
            "item",
            records=[(f"read {n}", "pending", owner) for n in range(count)],
            columns=["title", "status", "owner_id"],
        )
        ids = [row["id"] for row in await conn.fetch("SELECT id FROM item WHERE owner_id = $1", owner)]
        # What autovacuum does after a bulk load: statistics for the planner, a visibility map for
        # index-only counts. Without it the fresh table reads as empty and plans as such.
        await conn.execute('VACUUM (ANALYZE) item, "user"')
    finally:
        await conn.close()
    await wait_for_replica()
    return ids


async def reads(table: Table, sizes: Sizes, url: str, owner: int, meter: Meter) -> None:
    ids = await readable_items(owner)
    raw = await baselines.point_reads(test_settings.REPLICA_DSN, [(i, owner) for i in ids], sizes.load_s)
    table.add("raw: asyncpg point read on the replica, 16 conns", raw, "reads/s")
    token = [create_access_token(owner, HASH, get_settings())]
    targets = {"one": ("≥ 3,000 req/s", "≤ 20 ms"), "page": ("≥ 1,500 req/s", "")}
    for kind, name, paths in (
        ("one", "GET /items/{id} c=16", [f"/api/v1/items/{i}" for i in ids]),
        ("page", "GET /items?limit=20 c=16", ["/api/v1/items?limit=20"]),
    ):
        meter.start()
        result = await load(url, "GET", paths, token, concurrency=16, seconds=sizes.load_s)
        used = meter.stop()
        rate_target, p99_target = targets[kind]
        table.add(name, result.ok_per_s, "req/s", baseline="raw point read", baseline_value=raw, target=rate_target)
        table.add(f"{name}: p50", result.p50_ms, "ms")
        table.add(f"{name}: p99", result.p99_ms, "ms", target=p99_target)
        table.notes.append(f"{name} CPU ms per request (wrk not counted): {per_unit(used, result.ok)}")


async def log_price(table: Table, sizes: Sizes, url: str, owners: list[int], meter: Meter) -> None:
    """bus item.create and HTTP writes (applied rows/s) with the event log bound, beside unbound."""
    tokens = [create_access_token(owner, HASH, get_settings()) for owner in owners]
    body = json.dumps({"title": "bench log"})

    async def bus() -> tuple[float, int]:
        start, done = await publish_creates(owners, sizes.bus_messages, already=await count_items(owners))
        return sizes.bus_messages / (done - start), sizes.bus_messages

    async def http() -> tuple[float, int]:
        before, start = await count_items(owners), time.perf_counter()
        result = await load(url, "POST", ["/api/v1/items"], tokens, body=body, concurrency=64, seconds=sizes.load_s)
        applied, last = await settled(owners, before + result.ok)
        return (applied - before) / (last - start), applied - before

    measures = {f"bus item.create x{sizes.bus_messages:,}": (bus, "rows/s"), "HTTP POST /items c=64": (http, "rows/s")}
    await event_log.price(table, test_settings.RABBIT_URL, meter, measures)


class BenchWorker(Worker):
    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


PARTS = ("writes", "bus", "imports", "reads", "log", "instructions")
CLUSTER = "cluster"  # HTTP writes on the local 3-node cluster too (make cluster first): asked for with --only


async def main(sizes: Sizes, parts: tuple[str, ...] = PARTS, gateway_from: Path | None = None) -> Table:
    table = Table()
    await reset_database()
    await reset_vhost()
    users = await create_users(457)
    raw = await raw_baselines(table, sizes, users[0]) if {"writes", "bus"} & set(parts) else {"pipeline": 0.0}
    worker = BenchWorker()
    gateway = CheckoutGateway(gateway_from, GATEWAY_ENV) if gateway_from else Gateway(GATEWAY_ENV)
    worker.start()
    try:
        gateway.start()
        assert gateway.process is not None
        meter = Meter(gateway.process.pid, worker.pid)
        if "writes" in parts:
            for c, owners in ((16, users[1:65]), (64, users[65:129])):
                await http_writes(table, sizes, gateway.url, owners, raw["pipeline"], c, meter)
        if "bus" in parts:
            await bus_commands(table, sizes, users[129:193], raw["pipeline"], meter)
            await bus_with_refusals(table, sizes, users[200:328])
        if "imports" in parts:
            for n, rows in enumerate(sizes.imports):
                await imports(table, gateway.url, users[193 + n], rows, 0, worker)
        if "reads" in parts:
            await reads(table, sizes, gateway.url, users[199], meter)
        if "log" in parts:
            await log_price(table, sizes, gateway.url, users[328:392], meter)
        table.add("worker peak memory (VmHWM)", peak_mib(worker.pid), "MiB", target="≤ 300 MiB")
        table.add("gateway peak memory (VmHWM)", peak_mib(gateway.process.pid), "MiB")
    finally:
        gateway.stop()
        worker.stop()
    if "instructions" in parts:
        await instructions(table, gateway_from or ROOT, users[456])
    if CLUSTER in parts:
        await writes_on_the_cluster(table, sizes, users[392:456], raw["pipeline"])
    return table


async def instructions(table: Table, checkout: Path, owner: int) -> None:
    """Instructions the gateway of `checkout` executes per request, one request at a time (callgrind,
    bench/gateway_instructions.py): CPU time per request moves by ±10 % and more between runs on this
    machine, instructions by well under 1 %, so an A/B of the gateway shows a change of a few percent."""
    ids = await readable_items(owner)
    token = create_access_token(owner, HASH, get_settings())
    kinds = gateway_instructions.KINDS
    counted = await gateway_instructions.count(checkout, list(kinds), 300, token, ids)
    for kind, per_request in counted.items():
        table.add(f"gateway instructions per {kinds[kind]} (callgrind)", per_request / 1000, "k instr")


async def writes_on_the_cluster(table: Table, sizes: Sizes, owners: list[int], pipeline: float) -> None:
    """The c=64 HTTP writes again, with the bus on the three-node cluster (bench/cluster.py)."""
    cluster.fresh_vhost()
    worker, gateway = cluster.ClusterWorker(), cluster.cluster_gateway(GATEWAY_ENV)
    worker.start(60)
    try:
        gateway.start()
        assert gateway.process is not None
        meter = Meter(gateway.process.pid, worker.pid)
        await http_writes(table, sizes, gateway.url, owners, pipeline, 64, meter, where=" on the 3-node cluster")
    finally:
        gateway.stop()
        worker.stop()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller loads (about a minute)")
    parser.add_argument("--only", nargs="+", choices=(*PARTS, CLUSTER), default=PARTS, help="measure only these parts")
    parser.add_argument("--gateway-from", type=Path, help="the gateway of this checkout instead (bench/checkouts.py)")
    args = parser.parse_args()
    subprocess.run([str(ROOT / "scripts" / "services.sh")], check=True, capture_output=True)
    started = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    table = uvloop.run(main(sizes, tuple(args.only), args.gateway_from))  # the worker's loop too
    print(table.render())
    print(f"  ({time.perf_counter() - started:.0f} s; database {test_settings.DATABASE}, vhost {test_settings.VHOST}; "
          f"logs in .test-logs/{test_settings.DATABASE}/)")  # fmt: skip


if __name__ == "__main__":
    run()
