"""`opengovfood bus provision` against the real broker: idempotent, and passwords change only on --rotate."""

import asyncio
from collections.abc import Iterator
from urllib.parse import quote

import aio_pika
import aiormq
import httpx
import pytest
from aiormq.exceptions import ProbableAuthenticationError

from cli.bus import password_variable
from shared.event_log import EVENT_LOG_NAME, EVENT_LOG_POLICY, read_log
from shared.topology import EVENT_LOG, declare_queue
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.support.polling import eventually

VHOST = f"{test_settings.VHOST}_provision"
GATEWAY, WORKER = f"{VHOST}.gateway", f"{VHOST}.worker"
ADMIN = ("guest", "guest")
API = "http://127.0.0.1:15672/api"


@pytest.fixture
def cleanup() -> Iterator[None]:
    yield
    for user in (GATEWAY, WORKER):
        httpx.delete(f"{API}/users/{quote(user, safe='')}", auth=ADMIN, timeout=10)
    httpx.delete(f"{API}/vhosts/{quote(VHOST, safe='')}", auth=ADMIN, timeout=10)


def provision(*flags: str, **passwords: str) -> str:
    env = {"SERVICE_GRANTS": "{}", **{password_variable(user): pw for user, pw in passwords.items()}}
    args = ["bus", "provision", "--vhost", VHOST, "--gateway-user", GATEWAY, "--worker-user", WORKER, *flags]
    return opengovfood(*args, env=env).stdout


async def logs_in(user: str, password: str) -> bool:
    """aiormq, not aio_pika: a refused aio_pika connection leaves a close() coroutine nobody awaits."""
    url = f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1/{quote(VHOST, safe='')}"
    try:
        connection = await aiormq.connect(url)
    except ProbableAuthenticationError:
        return False
    await connection.close()
    return True


def permissions(user: str) -> dict[str, str]:
    response = httpx.get(f"{API}/permissions/{quote(VHOST, safe='')}/{quote(user, safe='')}", auth=ADMIN, timeout=10)
    return {key: response.json()[key] for key in ("configure", "write", "read")}


@pytest.mark.rabbit
@pytest.mark.usefixtures("cleanup")
async def test_rerunning_keeps_passwords_and_rotate_changes_them() -> None:
    out = provision(**{GATEWAY: "first-gateway-password", WORKER: ""})
    assert f"{GATEWAY}: provisioned in vhost {VHOST}, password from {password_variable(GATEWAY)}" in out
    generated = next(line for line in out.splitlines() if line.startswith(f"{WORKER}:")).split()[-3]
    assert await logs_in(GATEWAY, "first-gateway-password")
    assert await logs_in(WORKER, generated)
    granted = permissions(GATEWAY)

    again = provision(**{GATEWAY: "ignored-without-rotate"})  # the services keep running with their passwords
    assert f"{GATEWAY}: provisioned in vhost {VHOST}, password kept" in again
    assert f"{WORKER}: provisioned in vhost {VHOST}, password kept" in again
    assert await logs_in(GATEWAY, "first-gateway-password")
    assert await logs_in(WORKER, generated)
    assert permissions(GATEWAY) == granted

    provision("--rotate", **{GATEWAY: "second-gateway-password"})
    assert not await logs_in(GATEWAY, "first-gateway-password")
    assert await logs_in(GATEWAY, "second-gateway-password")
    assert not await logs_in(WORKER, generated)


@pytest.mark.rabbit
def test_the_administrator_cannot_provision_itself() -> None:
    refused = opengovfood("bus", "provision", "--vhost", VHOST, "--gateway-user", "guest", check=False)
    assert refused.returncode == 1
    assert "guest is the administrator provisioning" in refused.stderr


def retention(max_age: str) -> dict[str, object]:
    """Provision with this EVENT_LOG_MAX_AGE; the retention policy it set."""
    env = {"SERVICE_GRANTS": "{}", "EVENT_LOG_MAX_AGE": max_age, "EVENT_LOG_MAX_BYTES": "5000000"}
    out = opengovfood("bus", "provision", "--vhost", VHOST, "--gateway-user", GATEWAY, "--worker-user", WORKER,
                      env=env).stdout  # fmt: skip
    assert f"{EVENT_LOG_NAME}: retention max-age {max_age}, max-length-bytes 5000000" in out
    url = f"{API}/policies/{quote(VHOST, safe='')}/{EVENT_LOG_POLICY}"
    definition: dict[str, object] = httpx.get(url, auth=ADMIN, timeout=10).json()["definition"]
    return definition


async def effective_retention(admin: httpx.AsyncClient) -> dict[str, object]:
    """The log's effective policy, as the management API shows it with the queue's statistics (every 5 s)."""
    queue = (await admin.get(f"{API}/queues/{quote(VHOST, safe='')}/{EVENT_LOG_NAME}")).json()
    definition: dict[str, object] = queue.get("effective_policy_definition") or {}
    return definition


@pytest.mark.rabbit
@pytest.mark.usefixtures("cleanup")
async def test_retention_is_a_policy_that_changes_in_place_and_the_log_keeps_its_events() -> None:
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    async with httpx.AsyncClient(auth=ADMIN, timeout=10) as admin:  # the vhost, where guest declares the log
        await admin.put(f"{API}/vhosts/{quote(VHOST, safe='')}")
        await admin.put(f"{API}/permissions/{quote(VHOST, safe='')}/guest", json=everything)
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1/{quote(VHOST, safe='')}")
    async with connection:
        channel = await connection.channel()
        await declare_queue(channel, EVENT_LOG)
        for n in range(3):
            await channel.default_exchange.publish(aio_pika.Message(f"event {n}".encode()), routing_key=EVENT_LOG_NAME)
        assert await asyncio.to_thread(retention, "7D") == {"max-age": "7D", "max-length-bytes": 5_000_000}
        assert await asyncio.to_thread(retention, "1D") == {"max-age": "1D", "max-length-bytes": 5_000_000}
        kept = [entry.body async for entry in read_log(await connection.channel(), "first", idle_s=1)]
    assert kept == [b"event 0", b"event 1", b"event 2"]  # the same stream, changed in place
    async with httpx.AsyncClient(auth=ADMIN, timeout=10) as admin:
        applied = await eventually(lambda: effective_retention(admin), lambda found: found.get("max-age") == "1D")
    assert applied == {"max-age": "1D", "max-length-bytes": 5_000_000}
