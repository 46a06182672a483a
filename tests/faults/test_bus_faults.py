"""Faults on the bus side: duplicates, poison, and a worker lost while two share the partitions."""

import asyncio
import json
import time
import uuid
from collections import Counter

import aio_pika
import asyncpg
import httpx

from shared.topology import DEAD_LETTER_QUEUE_NAME, PARTITION_QUEUE_PREFIX
from tests import settings as test_settings
from tests.security.helpers import MANAGEMENT_API, VHOST, outcome_of
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.events import tap_events
from tests.support.polling import eventually
from tests.support.processes import Worker


def create(owner: int, title: str, command_id: uuid.UUID | None = None) -> tuple[str, aio_pika.Message]:
    body = {"owner_id": owner, "title": title}
    return "item.create", command_message(body, actor=f"user:{owner}", owner=str(owner), command_id=command_id)


async def count(primary: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await primary.fetchval(sql, *args))


async def test_every_command_published_twice_is_applied_once(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    messages = [create(owner.id, f"twice-{n}") for n in range(1000)]
    await publish([m for pair in zip(messages, messages, strict=True) for m in pair])
    rows = await eventually(
        lambda: count(primary, "SELECT count(*) FROM command WHERE actor = $1", f"user:{owner.id}"), lambda n: n >= 1000
    )
    assert rows == 1000
    assert await count(primary, "SELECT count(*) FROM item WHERE owner_id = $1", owner.id) == 1000
    assert await count(primary, "SELECT count(DISTINCT title) FROM item WHERE owner_id = $1", owner.id) == 1000


async def test_one_poison_message_among_1000_is_dead_lettered_with_its_reason(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    owner = await sign_up(http)
    poison_id = uuid.uuid4()
    poison = command_message(
        {"owner_id": owner.id, "title": ""}, actor=f"user:{owner.id}", owner=str(owner.id), command_id=poison_id
    )
    messages = [create(owner.id, f"p-{n}") for n in range(999)]
    messages.insert(500, ("item.create", poison))
    started = time.monotonic()
    await publish(messages)
    await eventually(
        lambda: count(primary, "SELECT count(*) FROM item WHERE owner_id = $1", owner.id), lambda n: n >= 999, 120
    )
    print(f"\n999 applied around one poison message in {time.monotonic() - started:.1f}s")
    dead = await _find_dead_letter(poison_id)
    assert "title" in dead["x-death-reason"]
    # Its id is a usable UUID: the poison has its own outcome, so no caller polls a `pending` for ever.
    recorded = await outcome_of(primary, poison_id)
    assert (recorded["status"], recorded["actor"]) == ("dead_lettered", f"user:{owner.id}")
    # Not held up: every command behind it in its partition was applied, and nothing stays in the queues.
    titles = {r["title"] for r in await primary.fetch("SELECT title FROM item WHERE owner_id = $1", owner.id)}
    assert titles == {f"p-{n}" for n in range(999)}
    assert await eventually(_commands_in_partitions, lambda left: left == 0) == 0


async def _commands_in_partitions() -> int:
    """Messages ready or unacknowledged in the partition queues, as the management API counts them."""
    url = f"{MANAGEMENT_API}/queues/{VHOST}?columns=name,messages"
    async with httpx.AsyncClient(auth=("guest", "guest"), timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    queues = response.json()
    return sum(q.get("messages", 0) for q in queues if q["name"].startswith(PARTITION_QUEUE_PREFIX))


async def _find_dead_letter(message_id: uuid.UUID) -> dict[str, object]:
    """Read the dead-letter queue (and put back what is not ours) until our message shows up."""
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE_NAME, passive=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            if message.message_id == str(message_id):
                await message.ack()
                return dict(message.headers or {})
            await message.ack()  # test leftovers: other tests' poison
    raise AssertionError(f"{message_id} not in the dead-letter queue")


async def test_two_workers_keep_one_owners_order_when_one_of_them_dies(
    worker: Worker, primary: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    owner = await sign_up(http)
    others = [
        await primary.fetchval(
            'INSERT INTO "user" (email, hashed_password, full_name) VALUES ($1, $2, $3) RETURNING id',
            f"two-{uuid.uuid4().hex}@example.org", "$argon2id$unused", "Other",
        )
        for _ in range(100)
    ]  # fmt: skip
    worker.stop()
    pair = [Worker(env={"WORKER_INDEX": str(i), "WORKER_COUNT": "2"}, name=f"worker-{i}-of-2") for i in range(2)]
    for one in pair:
        one.log_path.unlink(missing_ok=True)
        one.spawn()
    for one in pair:
        one.wait_ready()
    try:
        first_id = uuid.uuid4()
        await publish([create(owner.id, "v-start", first_id)])
        item_id = await eventually(
            lambda: primary.fetchval("SELECT resource_id FROM command WHERE command_id = $1", first_id), bool
        )
        holder = await eventually(lambda: _holder(pair, first_id), lambda found: found is not None)
        updates = [
            (
                "item.update",
                command_message({"item_id": item_id, "title": f"v{n}"}, actor=f"user:{owner.id}", owner=str(owner.id)),
            )
            for n in range(1000)
        ]
        creates = [create(other, f"o-{other}") for other in others]
        interleaved = [m for n, u in enumerate(updates) for m in ([u, creates[n // 10]] if n % 10 == 0 else [u])]
        async with tap_events() as tap:
            publishing = asyncio.create_task(publish(interleaved))
            await eventually(lambda: _version(primary, item_id), lambda v: v >= 300, 120)
            shares = [one.log_path.read_text().count("command applied") for one in pair]
            pair[holder].kill()
            await publishing
            final = await eventually(lambda: _version(primary, item_id), lambda v: v == 999, 180)
            await eventually(
                lambda: count(
                    primary, "SELECT count(*) FROM item WHERE title LIKE 'o-%' AND owner_id = ANY($1)", others
                ),
                lambda n: n == 100,
                60,
            )
            events = await eventually(tap.drain, lambda e: _titles(e, item_id)[-1:] == ["v999"], 60)
    finally:
        for one in pair:
            one.stop()
        worker.start()
    print(f"\ncommands applied per worker before the kill: {shares}; worker {holder} killed; final v{final}")
    assert all(share > 0 for share in shares)
    titles = _titles(events, item_id)
    assert titles == [f"v{n}" for n in range(1000)], Counter(titles).most_common(3)


async def _holder(pair: list[Worker], command_id: uuid.UUID) -> int | None:
    """Which worker applied this command (its log line says so)."""
    return next((i for i, one in enumerate(pair) if str(command_id) in one.log_path.read_text()), None)


async def _version(primary: asyncpg.Connection, item_id: int) -> int:
    title = await primary.fetchval("SELECT title FROM item WHERE id = $1", item_id)
    return int(title[1:]) if title and title[1:].isdigit() else -1


def _titles(events: list[dict[str, object]], item_id: int) -> list[str]:
    """The item's update titles in arrival order, each event counted once (deduplicated by event_id)."""
    seen: set[object] = set()
    titles = []
    for event in events:
        if event["resource_id"] == item_id and event["name"] == "item.updated" and event["event_id"] not in seen:
            seen.add(event["event_id"])
            titles.append(str(json.loads(json.dumps(event["data"]))["title"]))
    return titles


async def test_a_command_with_a_priority_is_dead_lettered_with_the_reason(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """publishing.md: never set `priority` (on RabbitMQ 4 it would overtake); one that does is refused."""
    owner = await sign_up(http)
    command_id = uuid.uuid4()
    routing_key, message = create(owner.id, "with a priority", command_id)
    message.priority = 5
    await publish([(routing_key, message), create(owner.id, "after it")])
    outcome = await outcome_of(primary, command_id)
    assert (outcome["status"], outcome["code"]) == ("dead_lettered", "dead_lettered")
    detail = await primary.fetchval("SELECT detail FROM command WHERE command_id = $1", command_id)
    assert "priority property is not allowed" in detail
    assert await count(primary, "SELECT count(*) FROM item WHERE title = 'with a priority'") == 0
    assert await eventually(
        lambda: count(primary, "SELECT count(*) FROM item WHERE owner_id = $1", owner.id), lambda n: n == 1
    )
