"""Raw baselines: what asyncpg and aio-pika do on this machine with nothing of ours in between."""

import asyncio
import json
import time

import aio_pika
import asyncpg

RAW_QUEUE = "bench.raw"
INSERT = "INSERT INTO item (title, status, owner_id) VALUES ($1, 'pending', $2)"


async def insert_per_transaction(dsn: str, owner_id: int, seconds: float) -> float:
    """One INSERT per transaction (autocommit), one connection: rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            await conn.execute(INSERT, "raw single", owner_id)
            rows += 1
        return rows / (time.perf_counter() - start)
    finally:
        await conn.close()


async def executemany(dsn: str, owner_id: int, seconds: float, batch: int = 1_000) -> float:
    """1,000-row executemany per transaction: rows/s."""
    conn = await asyncpg.connect(dsn)
    records = [("raw many", owner_id)] * batch
    try:
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            async with conn.transaction():
                await conn.executemany(INSERT, records)
            rows += batch
        return rows / (time.perf_counter() - start)
    finally:
        await conn.close()


async def copy(dsn: str, owner_id: int, seconds: float, batch: int = 50_000) -> float:
    """COPY of 50,000-row batches, one transaction each: rows/s."""
    conn = await asyncpg.connect(dsn)
    records = [("raw copy", None, "pending", owner_id)] * batch
    try:
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            await conn.copy_records_to_table(
                "item", records=records, columns=["title", "description", "status", "owner_id"]
            )
            rows += batch
        return rows / (time.perf_counter() - start)
    finally:
        await conn.close()


async def copy_rows(dsn: str, owner_id: int, rows: int, batch: int = 50_000) -> float:
    """COPY exactly `rows` rows in 50,000-row transactions (the same work as an import of that size): rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        start, done = time.perf_counter(), 0
        while done < rows:
            size = min(batch, rows - done)
            records = [(f"raw copy {done + n}", None, "pending", owner_id) for n in range(size)]
            await conn.copy_records_to_table(
                "item", records=records, columns=["title", "description", "status", "owner_id"]
            )
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


async def consume_with_group_commit(url: str, dsn: str, messages: int, owner_id: int) -> float:
    """Publisher and a bare consumer at once; the consumer inserts in batches (≤100 or 2 ms), then
    acks the batch. Rows committed per second, end to end."""
    connection = await aio_pika.connect(url)
    conn = await asyncpg.connect(dsn)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1_000)
        queue = await _raw_queue(channel)
        await queue.purge()
        buffer: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(buffer.put)
        start = time.perf_counter()
        publisher = asyncio.create_task(publish_only(url, messages, owner_id))
        committed = 0
        while committed < messages:
            batch = [await buffer.get()]
            deadline = time.perf_counter() + 0.002
            while len(batch) < 100:
                try:
                    batch.append(await asyncio.wait_for(buffer.get(), max(deadline - time.perf_counter(), 0)))
                except TimeoutError:
                    break
            records = [(body["title"], body["owner_id"]) for body in (json.loads(m.body) for m in batch)]
            async with conn.transaction():
                await conn.executemany(INSERT, records)
            await batch[-1].ack(multiple=True)
            committed += len(batch)
        rate = committed / (time.perf_counter() - start)
        await publisher
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    await conn.close()
    return rate


async def publish_only(url: str, messages: int, owner_id: int, in_flight: int = 1_000) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        body = json.dumps({"owner_id": owner_id, "title": "raw pipeline"}).encode()
        window = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with window:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=RAW_QUEUE)

        await asyncio.gather(*(one() for _ in range(messages)))
