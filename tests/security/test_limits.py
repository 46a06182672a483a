"""Body size (413) and rate limits (429 + Retry-After) keyed so that nobody can lock a victim out."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.infrastructure.limits import body_cap, client_address
from shared.settings import Settings
from tests.security.helpers import tap_everything
from tests.support.api import PASSWORD, sign_up, unique_email
from tests.support.processes import Gateway

TWO_MIB = 2 * 1024 * 1024
ATTEMPTS = 10_000
STRICT = {
    "TRUSTED_PROXY_HOPS": "1",  # this test plays the proxy: it sets X-Forwarded-For itself
    "LOGIN_RATE_PER_CLIENT": "200/hour",  # windows longer than the test, however slow the machine
    "LOGIN_RATE_PER_ACCOUNT": "5/hour",
    "SIGNUP_RATE_PER_CLIENT": "5/hour",
    "WRITE_RATE_PER_CALLER": "20/hour",
}


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_a_2_mib_body_is_413_and_nothing_is_published(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)
    big = {"title": "t", "description": "x" * TWO_MIB}
    async with tap_everything() as tap:
        declared = await http.post("/api/v1/items", json=big, headers=client.headers)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(32):
                yield b"x" * (TWO_MIB // 32)

        streamed = await http.post(
            "/api/v1/items", content=chunks(), headers={**client.headers, "Content-Type": "application/json"}
        )
        signup = await http.post("/api/v1/users", json={"email": unique_email(), "password": "x" * TWO_MIB})
        assert await tap.count() == 0
    for answer in (declared, streamed, signup):
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


async def test_oversized_headers_are_431(http: httpx.AsyncClient) -> None:
    answer = await http.get("/api/v1/users/me", headers={"X-Padding": "x" * 32 * 1024})
    assert answer.status_code == 431
    assert answer.headers["content-type"] == "application/problem+json"


async def test_headers_are_capped_together_at_16_kib_not_each(http: httpx.AsyncClient) -> None:
    """MAX_HEADER_BYTES bounds the sum: twenty headers of 1 KiB are refused, though none is large."""
    many = {f"X-Padding-{n}": "x" * 1024 for n in range(20)}
    fewer = {f"X-Padding-{n}": "x" * 1024 for n in range(12)}
    refused = await http.get("/api/v1/users/me", headers=many)
    assert refused.status_code == 431
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await http.get("/api/v1/users/me", headers=fewer)).status_code == 401  # under 16 KiB: on to auth


def test_the_import_upload_has_its_own_cap() -> None:
    settings = Settings(max_body_bytes=64 * 1024, max_import_bytes=100 * 1024 * 1024)
    assert body_cap("/api/v1/items", settings) == 64 * 1024
    assert body_cap("/api/v1/imports", settings) == 100 * 1024 * 1024
    assert body_cap("/api/v1/imports/42/rows", settings) == 100 * 1024 * 1024
    assert body_cap("/api/v1/importsx", settings) == 64 * 1024


def test_the_client_address_trusts_only_the_configured_proxies() -> None:
    scope = {"client": ("192.0.2.9", 5000), "headers": [(b"x-forwarded-for", b"6.6.6.6, 10.0.0.1")]}
    assert client_address(scope, 0) == "192.0.2.9"  # no proxy trusted: the header is ignored
    assert client_address(scope, 1) == "10.0.0.1"  # what our proxy appended, not what the client wrote
    assert client_address(scope, 2) == "6.6.6.6"
    assert client_address(scope, 3) == "192.0.2.9"  # fewer entries than proxies: not through them all


@pytest.fixture(scope="module")
def strict(stack: object) -> Iterator[Gateway]:
    """A gateway of its own with tight limits (the shared one is loose for the other tests)."""
    with Gateway(env=STRICT) as gateway:
        yield gateway


@pytest.fixture
async def strict_http(strict: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=strict.url, timeout=60, limits=limits) as client:
        yield client


async def test_10000_login_attempts_from_one_client_are_throttled_but_nobody_else_is(
    http: httpx.AsyncClient, strict_http: httpx.AsyncClient
) -> None:
    victim, bystander = await sign_up(http), await sign_up(http)
    attacker = "203.0.113.66"

    async def attempt(i: int) -> httpx.Response:
        email = victim.email if i % 2 else unique_email("spray")
        spoofed = f"198.51.100.{i % 250}, {attacker}"  # what the client wrote, then what our proxy saw
        return await strict_http.post(
            "/api/v1/login/access-token",
            data={"username": email, "password": f"guess {i}"},
            headers=_from(spoofed),
        )

    answers: list[httpx.Response] = []
    for start in range(0, ATTEMPTS, 10):  # a few in flight: more only adds contention on 2 cores
        answers += await asyncio.gather(*(attempt(i) for i in range(start, min(start + 10, ATTEMPTS))))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[429] >= ATTEMPTS - 200, statuses
    assert set(statuses) <= {401, 429}, statuses
    throttled = next(answer for answer in answers if answer.status_code == 429)
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["content-type"] == "application/problem+json"
    # The victim from their own address, and anyone else, log in as usual.
    for client, address in ((victim, "192.0.2.10"), (bystander, "192.0.2.11")):
        login = await strict_http.post(
            "/api/v1/login/access-token", data={"username": client.email, "password": PASSWORD}, headers=_from(address)
        )
        assert login.status_code == 200, login.text


async def test_guessing_one_account_is_throttled_per_client_and_account(
    http: httpx.AsyncClient, strict_http: httpx.AsyncClient
) -> None:
    victim = await sign_up(http)
    attacker = _from("203.0.113.77")
    statuses = [
        (
            await strict_http.post(
                "/api/v1/login/access-token", data={"username": victim.email, "password": "wrong"}, headers=attacker
            )
        ).status_code
        for _ in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3
    mine = await strict_http.post(
        "/api/v1/login/access-token", data={"username": victim.email, "password": PASSWORD}, headers=_from("192.0.2.20")
    )
    assert mine.status_code == 200


async def test_sign_ups_are_rate_limited_per_client(strict_http: httpx.AsyncClient) -> None:
    body = {"password": "long enough password", "full_name": "S"}
    statuses = [
        (
            await strict_http.post(
                "/api/v1/users", json={"email": unique_email(), **body}, headers=_from("203.0.113.88")
            )
        ).status_code
        for _ in range(7)
    ]
    assert statuses == [202] * 5 + [429] * 2
    other = await strict_http.post("/api/v1/users", json={"email": unique_email(), **body}, headers=_from("192.0.2.30"))
    assert other.status_code == 202


async def test_a_flood_of_writes_from_one_caller_does_not_starve_another(
    http: httpx.AsyncClient, strict_http: httpx.AsyncClient
) -> None:
    flooder, other = await sign_up(http), await sign_up(http)
    flood = [
        (await strict_http.post("/api/v1/items", json={"title": f"f{i}"}, headers=flooder.headers)).status_code
        for i in range(25)
    ]
    assert flood[:20] == [202] * 20
    assert flood[20:] == [429] * 5
    calm = await strict_http.post("/api/v1/items", json={"title": "calm"}, headers=other.headers)
    assert calm.status_code == 202
