"""Raw baselines: what asyncpg and aio-pika do on this machine with nothing of ours in between."""

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import asyncpg
import uvloop

RAW_QUEUE = "bench.raw"
ROOT = Path(__file__).resolve().parent.parent  # where `python -m bench.baselines` runs
ITEM_COLUMNS = ["title", "description", "status", "owner_id"]
INSERT = "INSERT INTO item (title, status, owner_id) VALUES ($1, 'pending', $2)"
RAW_EVENTS = "bench.raw.events"
# The least the message contract asks per command, written bare: the row with its id, the command's
# outcome (inbox) and its event (outbox) in the same transaction, then one confirmed event per row.
# Temporary tables (no WAL, no index but the key) make this cheaper than any real inbox and outbox.
CONTRACT_TABLES = (
    "CREATE TEMP TABLE raw_inbox (command_id uuid PRIMARY KEY, status text, item_id int)",
    "CREATE TEMP TABLE raw_outbox (id bigserial PRIMARY KEY, payload text, relayed boolean DEFAULT false)",
)
INSERT_RETURNING = (
    "INSERT INTO item (title, status, owner_id) "
    "SELECT t, 'pending', o FROM unnest($1::text[], $2::int[]) AS r(t, o) RETURNING id"
)
INBOX = "INSERT INTO raw_inbox SELECT c, 'applied', i FROM unnest($1::uuid[], $2::int[]) AS r(c, i)"
OUTBOX = "INSERT INTO raw_outbox (payload) SELECT unnest($1::text[]) RETURNING id"
RELAYED = "UPDATE raw_outbox SET relayed = true WHERE id = ANY($1::bigint[])"


async def _rate(dsn: str, seconds: float, step: Callable[[asyncpg.Connection], Awaitable[int]]) -> float:
    """Repeat `step` (which returns the rows it wrote) on one connection for `seconds`: rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            rows += await step(conn)
        return rows / (time.perf_counter() - start)
    finally:
        await conn.close()


async def insert_per_transaction(dsn: str, owner_id: int, seconds: float) -> float:
    """One INSERT per transaction (autocommit), one connection: rows/s."""

    async def one(conn: asyncpg.Connection) -> int:
        await conn.execute(INSERT, "raw single", owner_id)
        return 1

    return await _rate(dsn, seconds, one)


async def executemany(dsn: str, owner_id: int, seconds: float, batch: int = 1_000) -> float:
    """1,000-row executemany per transaction: rows/s."""
    records = [("raw many", owner_id)] * batch

    async def many(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            await conn.executemany(INSERT, records)
        return batch

    return await _rate(dsn, seconds, many)


async def copy(dsn: str, owner_id: int, seconds: float, batch: int = 50_000) -> float:
    """COPY of 50,000-row batches, one transaction each: rows/s."""
    records = [("raw copy", None, "pending", owner_id)] * batch

    async def copy_batch(conn: asyncpg.Connection) -> int:
        await conn.copy_records_to_table("item", records=records, columns=ITEM_COLUMNS)
        return batch

    return await _rate(dsn, seconds, copy_batch)


async def copy_rows(dsn: str, owner_id: int, rows: int, batch: int = 50_000) -> float:
    """COPY exactly `rows` rows in 50,000-row transactions (the same work as an import of that size): rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        start, done = time.perf_counter(), 0
        while done < rows:
            size = min(batch, rows - done)
            records = [(f"raw copy {done + n}", None, "pending", owner_id) for n in range(size)]
            await conn.copy_records_to_table("item", records=records, columns=ITEM_COLUMNS)
            done += size
        return rows / (time.perf_counter() - start)
    finally:
        await conn.close()


async def point_reads(dsn: str, keys: list[tuple[int, int]], seconds: float, concurrency: int = 16) -> float:
    """SELECT one item by id and owner on `dsn` (the replica), `concurrency` connections: reads/s."""
    done = 0

    async def reader(offset: int) -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        try:
            statement = await conn.prepare("SELECT * FROM item WHERE id = $1 AND owner_id = $2")
            i, end = offset, time.perf_counter() + seconds
            while time.perf_counter() < end:
                await statement.fetchrow(*keys[i % len(keys)])
                i, done = i + 7, done + 1
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(reader(n) for n in range(concurrency)))
    return done / (time.perf_counter() - start)


async def _raw_queue(channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
    return await channel.declare_queue(RAW_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})


async def publish(url: str, messages: int, owner_id: int, in_flight: int = 1_000) -> float:
    """Persistent publishes with confirms, `in_flight` outstanding, onto a quorum queue: msg/s."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await _raw_queue(channel)
        await queue.purge()
        body = json.dumps({"owner_id": owner_id, "title": "raw bus"}).encode()
        window = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with window:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=RAW_QUEUE)

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(messages)))
        rate = messages / (time.perf_counter() - start)
        await queue.purge()
        return rate


class _Batches:
    """Deliveries in arrival order, handed out in batches of up to `size`: once a first one is there, wait at
    most `window` s for the batch to fill. One event and at most one timer per batch, nothing per message."""

    def __init__(self, size: int = 100, window: float = 0.002) -> None:
        self.size, self.window = size, window
        self._messages: deque[aio_pika.abc.AbstractIncomingMessage] = deque()
        self._wake = asyncio.Event()
        self._wanted = 1

    async def put(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        """The consumer callback."""
        self._messages.append(message)
        if len(self._messages) >= self._wanted:
            self._wake.set()

    async def next(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        if not self._messages:
            await self._until(1, None)
        if len(self._messages) < self.size:
            await self._until(self.size, self.window)
        return [self._messages.popleft() for _ in range(min(self.size, len(self._messages)))]

    async def _until(self, count: int, within: float | None) -> None:
        """Until `count` messages are buffered, or `within` s passed."""
        self._wanted = count
        self._wake.clear()
        timer = None if within is None else asyncio.get_running_loop().call_later(within, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            if timer is not None:
                timer.cancel()


async def _group_commit(batches: _Batches, conn: asyncpg.Connection, messages: int) -> int:
    """Insert each batch in one transaction, then ack it (one multiple ack), until `messages` are committed."""
    committed = 0
    while committed < messages:
        batch = await batches.next()
        records = [(body["title"], body["owner_id"]) for body in (json.loads(m.body) for m in batch)]
        async with conn.transaction():
            await conn.executemany(INSERT, records)
        await batch[-1].ack(multiple=True)
        committed += len(batch)
    return committed


async def _group_commit_with_events(
    batches: _Batches, conn: asyncpg.Connection, messages: int, events: aio_pika.abc.AbstractExchange
) -> int:
    """The contract's minimum per batch: rows, outcomes and events in one transaction; then each event
    published persistent with a confirm (one message per event, as the AsyncAPI document says), the
    outbox rows marked relayed, and the batch acked."""
    committed = 0
    while committed < messages:
        batch = await batches.next()
        bodies = [json.loads(m.body) for m in batch]
        async with conn.transaction():
            ids = [row[0] for row in await conn.fetch(
                INSERT_RETURNING, [b["title"] for b in bodies], [b["owner_id"] for b in bodies]
            )]  # fmt: skip
            await conn.execute(INBOX, [uuid.uuid4() for _ in batch], ids)
            payloads = [json.dumps({"id": i, **b, "status": "pending"}) for i, b in zip(ids, bodies, strict=True)]
            outbox = [row[0] for row in await conn.fetch(OUTBOX, payloads)]
        await asyncio.gather(*(
            events.publish(
                aio_pika.Message(p.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="item.created"
            )
            for p in payloads
        ))  # fmt: skip
        await conn.execute(RELAYED, outbox)
        await batch[-1].ack(multiple=True)
        committed += len(batch)
    return committed


async def _start_publisher(url: str, messages: int, owner_id: int) -> asyncio.subprocess.Process:
    """The pipeline's publisher in a process of its own (as the worker is apart from its publishers),
    connected and waiting for "go" on its stdin."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.baselines", "publish", url, str(messages), str(owner_id),
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 60)
        if ready != b"ready\n":
            await process.wait()
            await _check(process)
            raise RuntimeError(f"bare publisher: expected 'ready', got {ready!r}")
    except BaseException:
        await _stop(process)
        raise
    return process


async def _check(process: asyncio.subprocess.Process) -> None:
    """Raise if the (exited) publisher failed, with the end of its stderr."""
    if process.returncode:
        assert process.stderr is not None
        stderr = await process.stderr.read()
        raise RuntimeError(f"bare publisher exited with {process.returncode}: {stderr.decode()[-2000:]}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


async def consume_with_group_commit(url: str, dsn: str, messages: int, owner_id: int, events: bool = False) -> float:
    """A bare consumer while a publisher in another process (confirms, 1,000 in flight) publishes `messages`;
    the consumer inserts in batches (≤100 or 2 ms), then acks the batch. Rows committed per second, end to end:
    from the publisher's go (it is connected by then, as the bench's publisher is) to the last commit.
    With `events`, each batch also does the contract's minimum (see _group_commit_with_events)."""
    publisher = await _start_publisher(url, messages, owner_id)
    try:
        connection = await aio_pika.connect(url)
        conn = await asyncpg.connect(dsn)
        try:
            async with connection:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=1_000)
                queue = await _raw_queue(channel)
                await queue.purge()
                batches = _Batches()
                if events:
                    for statement in CONTRACT_TABLES:
                        await conn.execute(statement)
                    confirming = await connection.channel(publisher_confirms=True)
                    exchange = await confirming.declare_exchange(RAW_EVENTS, "topic", durable=True)
                    apply = _group_commit_with_events(batches, conn, messages, exchange)
                else:
                    apply = _group_commit(batches, conn, messages)
                tag = await queue.consume(batches.put)
                assert publisher.stdin is not None
                start = time.perf_counter()
                publisher.stdin.write(b"go\n")
                await publisher.stdin.drain()
                publisher.stdin.close()
                consuming = asyncio.create_task(apply)
                published = asyncio.create_task(publisher.wait())
                try:
                    await asyncio.wait({consuming, published}, return_when=asyncio.FIRST_COMPLETED)
                    if published.done():
                        await _check(publisher)  # a failed publisher would leave the consumer waiting
                    committed = await consuming
                    rate = committed / (time.perf_counter() - start)
                    await published
                    await _check(publisher)
                finally:
                    consuming.cancel()
                    published.cancel()
                await queue.cancel(tag)
                await queue.delete(if_unused=False, if_empty=False)
        finally:
            await conn.close()
    finally:
        await _stop(publisher)
    return rate


async def publish_only(url: str, messages: int, owner_id: int, in_flight: int = 1_000) -> None:
    """The pipeline's publisher (run by `python -m bench.baselines publish`): connect, print "ready", wait for
    "go" on stdin, then publish `messages` persistent messages with confirms, `in_flight` outstanding."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        body = json.dumps({"owner_id": owner_id, "title": "raw pipeline"}).encode()
        window = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with window:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=RAW_QUEUE)

        print("ready", flush=True)
        if await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline) != "go\n":
            sys.exit("bare publisher: no go from the consumer")
        await asyncio.gather(*(one() for _ in range(messages)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The bare pipeline's publisher (see consume_with_group_commit).")
    parser.add_argument("command", choices=["publish"])
    parser.add_argument("url")
    parser.add_argument("messages", type=int)
    parser.add_argument("owner_id", type=int)
    parser.add_argument("--in-flight", type=int, default=1_000)
    args = parser.parse_args()
    uvloop.run(publish_only(args.url, args.messages, args.owner_id, args.in_flight))
