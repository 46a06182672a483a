"""The whole system under load and faults, every operation recorded, then the history checked.

As Jepsen's checkers do: HTTP writers retry a 503 with their Idempotency-Key (and read their writes
back with the consistency token), a bus publisher republishes what was not confirmed under the same
message id (and republishes some confirmed ones, as after a lost confirm), an event follower keeps
a durable queue; meanwhile the worker is killed (-9) and restarted, PostgreSQL's primary restarts
and RabbitMQ stops for 5 s (HISTORY_FAULTS names which). The checker then proves, from the records alone: every accepted
command applied exactly once; each owner's applied commands in acceptance order; every applied
command's event delivered, deduplicable by event_id, in commit order per owner; no read with a token
older than its write. It prints a table of operations, faults and anomalies (all must be zero).

HISTORY_SECONDS (default 60) sets the length; `make soak` runs it longer. It stops the machine's
services, so it runs with the outage tests, last (tests/conftest.py).
"""

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import httpx

from shared.brokers import Brokers, amqp_connect
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.topology import COMMANDS_EXCHANGE_NAME
from tests import settings as test_settings
from tests.faults.test_service_outages import broker_accepts_connections, rabbitmq
from tests.support.api import Client, sign_up
from tests.support.bus import command_message
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker, wait_until

SECONDS = float(os.environ.get("HISTORY_SECONDS", "60"))
WRITERS = 4
BROKER_DOWN_S = 5.0
PUBLISH_RATE = 100  # bus commands a second, at most


@dataclass
class History:
    """Every operation and what it was answered, in the order the clients saw."""

    accepted: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))  # owner -> titles, in order
    maybe: set[str] = field(default_factory=set)  # never acknowledged: applied at most once
    command_ids: dict[str, str] = field(default_factory=dict)  # title -> command id, of those answered 202
    http_writes: int = 0
    answers: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # HTTP status -> count
    bus_publishes: int = 0
    republished: int = 0
    reads: int = 0
    stale_reads: int = 0
    faults: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def answered(self, status: int) -> None:
        self.answers[status] += 1


async def _connect(url: str) -> aio_pika.abc.AbstractConnection:
    return await amqp_connect(url, timeout=5)  # on a cluster: the first node that answers (shared/brokers.py)


async def _writer(http: httpx.AsyncClient, client: Client, number: int, history: History, stop: asyncio.Event) -> None:
    """Sequential writes of one owner; a 503 (or no answer) is retried with the same key until accepted."""
    sent = 0
    while not stop.is_set():
        title, key = f"w{number}-{sent}", uuid.uuid4().hex
        wait = sent % 4 == 0  # every fourth waits for the outcome, then reads it back with the token
        headers = {**client.headers, "Idempotency-Key": key, **({"Prefer": "wait=5"} if wait else {})}
        history.maybe.add(title)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            history.http_writes += 1
            try:
                response = await http.post("/api/v1/items", json={"title": title}, headers=headers)
            except httpx.HTTPError:
                history.answered(0)
                await asyncio.sleep(0.2)  # a client's pause before its retry, not a synchronisation
                continue
            history.answered(response.status_code)
            if response.status_code in (201, 202):
                history.maybe.discard(title)
                history.accepted[client.id].append(title)
                if response.status_code == 201:  # applied, as the outcome said
                    await _read_back(http, client, response, history)
                else:
                    history.command_ids[title] = response.json()["command_id"]
                break
            assert response.status_code in (429, 503), response.text  # nothing else may refuse a valid write
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")) / 4)
        sent += 1


async def _read_back(http: httpx.AsyncClient, client: Client, created: httpx.Response, history: History) -> None:
    token = created.headers.get("x-consistency-token")
    headers = {**client.headers, **({"X-Consistency-Token": token} if token else {})}
    history.reads += 1
    try:
        read = await http.get(f"/api/v1/items/{created.json()['id']}", headers=headers)
    except httpx.HTTPError:
        return
    if read.status_code == 404:
        history.stale_reads += 1


async def _publisher(owner: Client, history: History, stop: asyncio.Event) -> None:
    """A service on the bus: confirmed publishes; what was not confirmed goes again under its id, and
    every 20th confirmed one is published again, as after a lost confirm."""
    sent, unconfirmed = 0, []
    while not stop.is_set() or unconfirmed:
        try:
            connection = await Brokers(test_settings.RABBIT_URLS).connect(_connect)
            async with connection:
                channel = await connection.channel(on_return_raises=True)
                exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME, ensure=False)
                while not stop.is_set() or unconfirmed:
                    if not unconfirmed:
                        unconfirmed.append((f"b-{sent}", str(uuid.uuid4())))
                        history.maybe.add(f"b-{sent}")
                        sent += 1
                    title, message_id = unconfirmed[0]
                    body = {"owner_id": owner.id, "title": title}
                    message = command_message(
                        body, actor=f"user:{owner.id}", owner=str(owner.id), command_id=message_id
                    )
                    history.bus_publishes += 1
                    await asyncio.wait_for(exchange.publish(message, routing_key="item.create", mandatory=True), 5)
                    unconfirmed.pop(0)
                    await asyncio.sleep(1 / PUBLISH_RATE)  # the publisher's pace: a backlog the run can drain
                    if title in history.maybe:  # its first confirm
                        history.maybe.discard(title)
                        history.accepted[owner.id].append(title)
                        history.command_ids[title] = message_id
                        if sent % 20 == 0:
                            history.republished += 1
                            unconfirmed.append((title, message_id))
        except Exception:
            await asyncio.sleep(0.5)  # the broker is away: a publisher's pause before it tries again


async def _event_queue() -> str:
    """A durable queue bound to every item event, declared before the load starts."""
    name = f"test.history.events.{uuid.uuid4().hex}"
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(await channel.get_exchange(EVENTS_EXCHANGE_NAME, ensure=False), routing_key="item.*")
    return name


async def _follow_events(queue_name: str, history: History, done: asyncio.Event) -> None:
    """Read the queue with acks until `done`; reconnect while the broker is away."""
    while not done.is_set():
        try:
            connection = await Brokers(test_settings.RABBIT_URLS).connect(_connect)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(queue_name, passive=True)
                while not done.is_set():
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        await asyncio.sleep(0.05)  # an idle poll of the queue, not a synchronisation
                        continue
                    history.events.append(json.loads(message.body))
                    await message.ack()
                await queue.delete(if_unused=False, if_empty=False)
        except Exception:
            await asyncio.sleep(0.5)  # the broker is away


def _restart_primary() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    restart = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "immediate"]
    subprocess.run(restart, check=True, capture_output=True, timeout=120)


FAULTS = os.environ.get("HISTORY_FAULTS", "kill,primary,broker").split(",")


async def _faults(worker: Worker, history: History) -> None:
    """One of each, the i-th at i/4 of the run (or as soon as the one before is over)."""
    started = time.monotonic()

    async def at(fraction: float) -> None:  # the schedule of faults, not a synchronisation
        await asyncio.sleep(max(0.0, started + fraction * SECONDS - time.monotonic()))

    if "kill" in FAULTS:
        await at(0.25)
        worker.kill()
        history.faults.append("worker kill -9")
        await asyncio.to_thread(worker.start, 60)
    if "primary" in FAULTS:
        await at(0.5)
        await asyncio.to_thread(_restart_primary)
        history.faults.append("primary restart")
    if "broker" in FAULTS:
        await at(0.75)
        await asyncio.to_thread(rabbitmq, "stop_app")
        history.faults.append(f"broker stopped {BROKER_DOWN_S:.0f} s")
        await asyncio.sleep(BROKER_DOWN_S)  # how long the broker stays down
        await asyncio.to_thread(rabbitmq, "start_app")
        await asyncio.to_thread(wait_until, broker_accepts_connections, 60, "RabbitMQ to accept connections")


async def _check(history: History, primary: asyncpg.Connection) -> dict[str, int]:
    """Anomalies by kind, from the records alone."""
    accepted = {title for titles in history.accepted.values() for title in titles}
    owners = sorted(history.accepted)
    rows = await eventually(
        lambda: primary.fetch("SELECT title, count(*) AS n FROM item WHERE owner_id = ANY($1) AND title = ANY($2)"
                              " GROUP BY title", owners, sorted(accepted | history.maybe)),
        lambda found: accepted <= {row["title"] for row in found},
        180,
    )  # fmt: skip
    count = {row["title"]: row["n"] for row in rows}
    ids = [uuid.UUID(history.command_ids[title]) for title in accepted if history.command_ids.get(title)]
    outcomes = {
        str(row["command_id"]): row["status"]
        for row in await primary.fetch("SELECT command_id, status FROM command WHERE command_id = ANY($1)", ids)
    }
    first_seen: dict[str, dict[str, Any]] = {}
    await eventually(
        lambda: asyncio.sleep(0, {event["data"].get("title") for event in history.events}),
        lambda titles: accepted <= titles,
        60,
    )
    for event in history.events:
        first_seen.setdefault(event["event_id"], event)
    events_by_owner: dict[int, list[str]] = defaultdict(list)
    for event in first_seen.values():
        if event["name"] == "item.created" and event["data"].get("title") in accepted:
            events_by_owner[event["data"]["owner_id"]].append(event["data"]["title"])
    applied_order = {
        owner: [row["title"] for row in await primary.fetch(
            "SELECT title FROM item WHERE owner_id = $1 AND title = ANY($2) ORDER BY id", owner, titles)]
        for owner, titles in history.accepted.items()
    }  # fmt: skip
    for owner, titles in history.accepted.items():  # what an anomaly looks like, for whoever reads the log
        for kind, seen in (("applied", applied_order[owner]), ("events", events_by_owner.get(owner, []))):
            if seen != titles:
                at = next((n for n, (a, b) in enumerate(zip(seen, titles, strict=False)) if a != b), len(seen))
                near = slice(max(0, at - 3), at + 4)
                print(f"\nowner {owner}: {kind} {seen[near]} != accepted {titles[near]}")
    return {
        "lost": len([title for title in accepted if count.get(title, 0) == 0]),
        "duplicated": sum(n - 1 for n in count.values() if n > 1),
        "not applied (outcome)": len([i for i in ids if outcomes.get(str(i)) != "applied"]),
        "out of order": sum(applied_order[owner] != titles for owner, titles in history.accepted.items()),
        "events missing": len(accepted - {title for titles in events_by_owner.values() for title in titles}),
        "events out of order": sum(
            events_by_owner.get(owner, []) != titles for owner, titles in history.accepted.items()
        ),
        "stale reads": history.stale_reads,
    }


async def check_on_primary(history: History, followed: asyncio.Event, follower: asyncio.Task[None]) -> dict[str, int]:
    """The anomalies, read on a new connection (the primary may have restarted); then the follower stops."""
    primary = await asyncpg.connect(test_settings.PRIMARY_DSN)
    try:
        return await _check(history, primary)
    finally:
        await primary.close()
        followed.set()
        await follower


async def test_a_generated_load_with_faults_keeps_every_promise(stack: tuple[Worker, Gateway]) -> None:
    worker, gateway = stack
    history, writing, followed = History(), asyncio.Event(), asyncio.Event()
    queue_name = await _event_queue()
    follower = asyncio.create_task(_follow_events(queue_name, history, followed))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        clients = [await sign_up(http) for _ in range(WRITERS + 1)]
        load = [asyncio.create_task(_writer(http, c, n, history, writing)) for n, c in enumerate(clients[:WRITERS])]
        load.append(asyncio.create_task(_publisher(clients[WRITERS], history, writing)))
        started = time.monotonic()
        await _faults(worker, history)
        await asyncio.sleep(max(0.0, SECONDS - (time.monotonic() - started)))  # the run's length
        writing.set()
        await asyncio.wait_for(asyncio.gather(*load), 180)
    anomalies = await check_on_primary(history, followed, follower)
    operations = history.http_writes + history.bus_publishes + history.reads
    print(
        f"\nhistory of {time.monotonic() - started:.0f} s: {operations} operations "
        f"({history.http_writes} HTTP writes {dict(history.answers)}, {history.bus_publishes} bus publishes "
        f"({history.republished} republished), {history.reads} reads with a token, {len(history.events)} events)"
        f"\nfaults: {', '.join(history.faults)}\nanomalies: {anomalies}"
    )
    assert len(history.faults) == len(FAULTS)
    assert sum(map(len, history.accepted.values())) > 0
    assert set(anomalies.values()) == {0}, anomalies
