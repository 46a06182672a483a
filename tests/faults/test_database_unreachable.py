"""The gateway's databases gone (a primary restarting, a replica unreachable): every answer that
needs them is a 503 with Retry-After, never a 500, and they serve again once back.

Found by the history checker: a keyed POST during a primary restart looked its key up on a
connection the restart had closed, and answered 500."""

from collections.abc import Iterator

import httpx
import pytest

from tests import settings as test_settings
from tests.support.api import sign_up
from tests.support.processes import Gateway
from tests.support.proxy import StartingUp, TcpProxy


@pytest.fixture
def cut_off(stack: object) -> Iterator[tuple[Gateway, TcpProxy, TcpProxy]]:
    """A gateway that reaches the primary and the replica through proxies the test can cut (the
    primary's then answers as a primary that restarts does)."""
    with StartingUp(test_settings.PRIMARY_PORT) as primary, TcpProxy(test_settings.REPLICA_PORT) as replica:
        urls = {
            "DATABASE_URL": test_settings.GATEWAY_DATABASE_URL.replace(
                f":{test_settings.PRIMARY_PORT}/", f":{primary.port}/"
            ),
            "READ_DATABASE_URL": test_settings.GATEWAY_READ_DATABASE_URL.replace(
                f":{test_settings.REPLICA_PORT}/", f":{replica.port}/"
            ),
        }
        with Gateway(urls, name="gateway-cut-off") as gateway:
            yield gateway, primary, replica


async def test_with_its_databases_gone_the_gateway_answers_503_never_500(
    http: httpx.AsyncClient, cut_off: tuple[Gateway, TcpProxy, TcpProxy]
) -> None:
    gateway, primary, replica = cut_off
    client = await sign_up(http)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as cut:
        created = await cut.post(
            "/api/v1/items", json={"title": "before"}, headers={**client.headers, "Prefer": "wait=5"}
        )
        assert created.status_code == 201, created.text
        item = created.json()["id"]
        primary.cut()
        replica.cut()
        keyed = {**client.headers, "Idempotency-Key": "a-key-looked-up-on-the-primary"}
        answers = [
            await cut.post("/api/v1/items", json={"title": "during"}, headers=keyed),
            await cut.get(f"/api/v1/items/{item}", headers=client.headers),
            await cut.get("/api/v1/items", headers=client.headers),
        ]
        for answer in answers:
            assert answer.status_code == 503, (answer.request.url, answer.status_code, answer.text)
            assert answer.headers["Retry-After"]
        primary.restore()
        replica.restore()
        again = await cut.get(f"/api/v1/items/{item}", headers=client.headers)
        assert again.status_code == 200, again.text
