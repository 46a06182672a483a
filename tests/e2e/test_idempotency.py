"""An Idempotency-Key reused with another body is never answered as the first command, and no fast
hash of a password leaves the gateway (through the real stack, with several gateway processes)."""

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.security.helpers import tap_everything
from tests.support.api import WAIT, Client, sign_up, unique_email
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker

PAIRS = 100


@pytest.fixture(scope="module")
def two_processes(stack: tuple[Worker, Gateway]) -> Iterator[Gateway]:
    """A gateway of two processes, on the read-only database role (as the test stack's)."""
    with Gateway(env={"GATEWAY_WORKERS": "2"}) as gateway:
        yield gateway


async def _command_of(http: httpx.AsyncClient, client: Client, answer: httpx.Response) -> dict[str, object]:
    """Where a 202 leads: the command's state once the worker has decided it."""
    location = answer.headers["Location"]
    polled = await eventually(
        lambda: http.get(location, headers=client.headers), lambda seen: seen.json()["status"] != "pending"
    )
    return dict(polled.json())


async def test_a_key_reused_with_another_body_in_flight_is_never_the_first_command(
    two_processes: Gateway, primary: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=two_processes.url, timeout=30) as http:
        client = await sign_up(http)

        async def pair(n: int) -> tuple[httpx.Response, httpx.Response]:
            """Back to back: the second is sent as soon as the first is accepted (still in flight)."""
            headers = {**client.headers, "Idempotency-Key": f"pair-{n}-{uuid.uuid4().hex}"}
            first = await http.post("/api/v1/items", json={"title": f"first {n}"}, headers=headers)
            second = await http.post("/api/v1/items", json={"title": f"second {n}"}, headers=headers)
            return first, second

        answers = await asyncio.gather(*(pair(n) for n in range(PAIRS)))
        for first, second in answers:
            assert first.status_code == 202, first.text
            assert second.status_code in (202, 422), second.text
            if second.status_code == 202:
                assert second.json()["command_id"] != first.json()["command_id"]
                refused = await _command_of(http, client, second)
                assert (refused["status"], refused["code"]) == ("rejected", "idempotency_key_reused")
            applied = await _command_of(http, client, first)
            assert applied["status"] == "applied"
    titles = {row["title"] for row in await primary.fetch("SELECT title FROM item WHERE owner_id = $1", client.id)}
    assert titles == {f"first {n}" for n in range(PAIRS)}  # no second body was ever applied


async def test_a_known_key_with_another_body_is_422_at_once(two_processes: Gateway) -> None:
    async with httpx.AsyncClient(base_url=two_processes.url, timeout=30) as http:
        client = await sign_up(http)
        headers = {**client.headers, **WAIT, "Idempotency-Key": uuid.uuid4().hex}
        assert (await http.post("/api/v1/items", json={"title": "kept"}, headers=headers)).status_code == 201
        async with tap_everything() as tap:
            other = await http.post("/api/v1/items", json={"title": "other"}, headers=headers)
            assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
            assert await tap.count() == 0  # refused without publishing


async def test_sign_up_fingerprints_leave_the_password_out(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """Two sign-ups with one key that differ only in the password are one request: the password is
    not in what travels with the command, so nothing on the bus or in the tables is a hash of it
    (beyond its argon2id hash)."""
    email, key = unique_email(), {"Idempotency-Key": uuid.uuid4().hex}
    body = {"email": email, "full_name": "Same Person"}
    async with tap_everything() as tap:
        first = await http.post("/api/v1/users", json={**body, "password": "first password 1"}, headers={**WAIT, **key})
        again = await http.post("/api/v1/users", json={**body, "password": "other password 2"}, headers={**WAIT, **key})
        published = await tap.drain()
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    fingerprints = {m.headers.get("x-fingerprint") for m in published if m.routing_key == "user.create"}
    assert len(fingerprints) == 1  # at most the first was published: the retry was answered from the inbox
    stored = await primary.fetchval("SELECT fingerprint FROM command WHERE resource_id = $1 AND name = $2",
                                    first.json()["id"], "user.create")  # fmt: skip
    assert stored in fingerprints
