"""`opengovfood bus provision` against the real broker: idempotent, and passwords change only on --rotate."""

from collections.abc import Iterator
from urllib.parse import quote

import aiormq
import httpx
import pytest
from aiormq.exceptions import ProbableAuthenticationError

from cli.bus import password_variable
from tests import settings as test_settings
from tests.ops.cli import opengovfood

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
