"""Idempotency keys, If-Match, events and an honest gateway, through the real stack."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from shared.topology import COMMANDS_EXCHANGE_NAME, PARTITIONS_EXCHANGE_NAME
from tests import settings as test_settings
from tests.support.api import WAIT, Client, create_item, sign_up
from tests.support.events import tap_events
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker
from tests.support.proxy import TcpProxy


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Client:
    return await sign_up(http)


async def test_a_retry_with_the_same_key_and_body_is_applied_once_and_answers_the_first_outcome(
    http: httpx.AsyncClient, alice: Client, primary: asyncpg.Connection
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    title = f"once {uuid.uuid4().hex}"
    first = await http.post("/api/v1/items", json={"title": title}, headers={**alice.headers, **WAIT, **key})
    again = await http.post("/api/v1/items", json={"title": title}, headers={**alice.headers, **WAIT, **key})
    without_wait = await http.post("/api/v1/items", json={"title": title}, headers={**alice.headers, **key})
    assert first.status_code == again.status_code == without_wait.status_code == 201
    assert first.json()["id"] == again.json()["id"] == without_wait.json()["id"]
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", title) == 1


async def test_the_same_key_with_another_body_is_422_and_never_applied(
    http: httpx.AsyncClient, alice: Client, primary: asyncpg.Connection
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    await http.post("/api/v1/items", json={"title": "original"}, headers={**alice.headers, **WAIT, **key})
    other = await http.post("/api/v1/items", json={"title": "sneaky"}, headers={**alice.headers, **WAIT, **key})
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title = 'sneaky'") == 0


async def test_concurrent_requests_with_one_key_apply_once_and_answer_alike(
    http: httpx.AsyncClient, alice: Client, primary: asyncpg.Connection
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    title = f"concurrent {uuid.uuid4().hex}"
    answers = await asyncio.gather(
        *(
            http.post("/api/v1/items", json={"title": title}, headers={**alice.headers, **WAIT, **key})
            for _ in range(10)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", title) == 1


async def test_concurrent_http_writes_of_one_owner_apply_in_the_order_they_were_accepted(
    http: httpx.AsyncClient, primary: asyncpg.Connection, alice: Client
) -> None:
    """Eight clients of one owner write at once, each its next item once its last was answered 202:
    whatever the interleaving, a write sent after another's 202 is applied after it (an item's id is
    drawn when it is applied)."""
    answered: list[tuple[float, float, str]] = []  # sent, answered 202, title

    async def writer(number: int) -> None:
        for n in range(25):
            title, sent = f"w{number}-{n}", time.monotonic()
            response = await http.post("/api/v1/items", json={"title": title}, headers=alice.headers)
            assert response.status_code == 202, response.text
            answered.append((sent, time.monotonic(), title))

    await asyncio.gather(*(writer(number) for number in range(8)))
    rows = await eventually(
        lambda: primary.fetch("SELECT id, title FROM item WHERE owner_id = $1", alice.id),
        lambda found: len(found) == 200,
        60,
    )
    applied = {row["title"]: row["id"] for row in rows}
    ordered = [(first, then) for _, done, first in answered for sent, _, then in answered if done < sent]
    overtaken = [(first, then) for first, then in ordered if applied[then] < applied[first]]
    at_once = sum(1 for a in answered for b in answered if a[0] < b[0] < a[1])  # b sent while a was in flight
    print(f"\n200 concurrent writes: {len(ordered)} pairs in order, {at_once} at once, {len(overtaken)} overtaken")
    assert at_once > 100  # the writers really overlapped
    assert overtaken == []


async def test_if_match_applies_only_to_the_version_read(http: httpx.AsyncClient, alice: Client) -> None:
    created = await create_item(http, alice, title="versioned")
    url = f"/api/v1/items/{created.json()['id']}"
    token = {"X-Consistency-Token": created.headers["X-Consistency-Token"]}
    etag = (await http.get(url, headers={**alice.headers, **token})).headers["ETag"]
    first = await http.patch(url, json={"title": "v2"}, headers={**alice.headers, **WAIT, "If-Match": etag})
    assert first.status_code == 200
    assert first.headers["ETag"] != etag
    stale = await http.patch(url, json={"title": "v3"}, headers={**alice.headers, **WAIT, "If-Match": etag})
    assert stale.status_code == 412
    assert (await http.delete(url, headers={**alice.headers, **WAIT, "If-Match": etag})).status_code == 412
    current = first.headers["ETag"]
    assert (await http.delete(url, headers={**alice.headers, **WAIT, "If-Match": current})).status_code == 204


async def test_applied_commands_emit_events_in_order_with_their_command_id(
    http: httpx.AsyncClient, alice: Client
) -> None:
    async with tap_events() as tap:
        created = await create_item(http, alice, title="evented")
        url = f"/api/v1/items/{created.json()['id']}"
        for title in ("e1", "e2", "e3"):
            await http.patch(url, json={"title": title}, headers={**alice.headers, **WAIT})
        await http.delete(url, headers={**alice.headers, **WAIT})
        events = await eventually(
            tap.drain, lambda e: len([x for x in e if x["resource_id"] == created.json()["id"]]) >= 5
        )
    mine = [e for e in events if e["resource_id"] == created.json()["id"]]
    assert [e["name"] for e in mine] == ["item.created", "item.updated", "item.updated", "item.updated", "item.deleted"]
    assert [e["data"].get("title") for e in mine[1:4]] == ["e1", "e2", "e3"]
    assert len({e["command_id"] for e in mine}) == 5


@pytest.fixture(scope="module")
def broker_proxy() -> Iterator[TcpProxy]:
    with TcpProxy(5672) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def proxied_gateway(worker: Worker, broker_proxy: TcpProxy) -> Iterator[Gateway]:
    env = {"RABBIT_URL": test_settings.RABBIT_URL.replace(":5672/", f":{broker_proxy.port}/")}
    with Gateway(env=env) as gateway:
        yield gateway


@pytest.fixture
async def proxied(proxied_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxied_gateway.url, timeout=30) as client:
        yield client


async def test_without_a_broker_writes_answer_503_fast_and_recover_by_themselves(
    proxied: httpx.AsyncClient, broker_proxy: TcpProxy
) -> None:
    client = await sign_up(proxied)
    broker_proxy.cut()
    try:
        for _ in range(3):
            started = asyncio.get_running_loop().time()
            response = await proxied.post("/api/v1/items", json={"title": "while down"}, headers=client.headers)
            assert response.status_code == 503
            assert asyncio.get_running_loop().time() - started < 5
            assert "Retry-After" in response.headers
            assert uuid.UUID(response.json()["command_id"])
    finally:
        broker_proxy.restore()
    back = await eventually(
        lambda: proxied.post("/api/v1/items", json={"title": "back"}, headers=client.headers),
        lambda r: r.status_code == 202,
        deadline_s=30,
    )
    assert back.status_code == 202


async def test_an_unroutable_command_is_an_error_not_a_silent_drop(http: httpx.AsyncClient, alice: Client) -> None:
    import aio_pika

    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        commands = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        partitions = await channel.get_exchange(PARTITIONS_EXCHANGE_NAME)
        await partitions.unbind(commands, routing_key="#")
        try:
            response = await http.post("/api/v1/items", json={"title": "nowhere"}, headers=alice.headers)
        finally:
            await partitions.bind(commands, routing_key="#")
    assert response.status_code == 503


async def test_the_gateway_starts_without_a_broker_and_connects_when_it_returns(worker: Worker) -> None:
    with TcpProxy(5672) as proxy:
        proxy.cut()
        gateway = Gateway(env={"RABBIT_URL": test_settings.RABBIT_URL.replace(":5672/", f":{proxy.port}/")})
        gateway.spawn()
        try:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
                live = await eventually(
                    lambda: _get(client, "/health/live"), lambda r: r is not None and r.status_code == 200, 30
                )
                assert live is not None
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["broker"] is False
                proxy.restore()
                await eventually(
                    lambda: _get(client, "/health/ready"), lambda r: r is not None and r.status_code == 200, 40
                )
        finally:
            gateway.stop()


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await client.get(path)
    except httpx.TransportError:
        return None
