"""Forged, expired and orphaned tokens are 401; a write with one publishes nothing."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from cli.bus import service_user
from gateway.infrastructure.security import password_stamp
from shared.settings import ServiceGrant, get_settings
from tests import settings as test_settings
from tests.security.helpers import command, outcome_of, provision, publish_as, tap_everything
from tests.support.api import PASSWORD, WAIT, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually

SECRET = test_settings.ENV["SECRET_KEY"]
ISSUER, AUDIENCE = "opengovfood", "opengovfood-api"


def _claims(user_id: int, stamp: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id), "pwd": stamp, "iat": now, "exp": now + timedelta(minutes=5), "iss": ISSUER,
        "aud": AUDIENCE,
    }  # fmt: skip
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()

    payload = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in claims.items()}
    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(payload)}."


def forged_tokens(user_id: int, stamp: str) -> dict[str, str]:
    past = datetime.now(UTC) - timedelta(hours=1)
    claims = {"user_id": user_id, "stamp": stamp}
    return {
        "alg none": _unsigned(_claims(**claims)),
        "wrong secret": jwt.encode(_claims(**claims), "another-secret-of-the-same-length-0123456789abcdef", "HS256"),
        "other algorithm, right secret": jwt.encode(_claims(**claims), SECRET, "HS384"),
        "expired": jwt.encode(_claims(**claims, iat=past - timedelta(hours=1), exp=past), SECRET, "HS256"),
        "wrong audience": jwt.encode(_claims(**claims, aud="another-api"), SECRET, "HS256"),
        "wrong issuer": jwt.encode(_claims(**claims, iss="evil"), SECRET, "HS256"),
        "no sub": jwt.encode(_claims(**claims, sub=None), SECRET, "HS256"),
        "no exp": jwt.encode(_claims(**claims, exp=None), SECRET, "HS256"),
        "no iat": jwt.encode(_claims(**claims, iat=None), SECRET, "HS256"),
        "no aud": jwt.encode(_claims(**claims, aud=None), SECRET, "HS256"),
        "no iss": jwt.encode(_claims(**claims, iss=None), SECRET, "HS256"),
        "no password stamp": jwt.encode(_claims(**claims, pwd=None), SECRET, "HS256"),
        "another password's stamp": jwt.encode(_claims(**claims, pwd="AAAAAAAAAAAAAAAA"), SECRET, "HS256"),
        "sub out of range": jwt.encode(_claims(**claims, sub="99999999999999999999"), SECRET, "HS256"),
    }


async def _stamp(primary: asyncpg.Connection, user_id: int) -> str:
    hashed = await primary.fetchval('SELECT hashed_password FROM "user" WHERE id = $1', user_id)
    return password_stamp(hashed, get_settings())


async def test_forged_tokens_are_401_and_writes_with_them_publish_nothing(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    victim = await sign_up(http)
    stamp = await _stamp(primary, victim.id)
    genuine = jwt.encode(_claims(victim.id, stamp), SECRET, "HS256")  # the forgeries differ from it in one way each
    assert (await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {genuine}"})).status_code == 200
    async with tap_everything() as tap:
        for name, token in forged_tokens(victim.id, stamp).items():
            headers = {"Authorization": f"Bearer {token}"}
            read = await http.get("/api/v1/users/me", headers=headers)
            write = await http.post("/api/v1/items", json={"title": "forged"}, headers=headers)
            assert (read.status_code, write.status_code) == (401, 401), name
            assert read.headers["www-authenticate"] == "Bearer"
        assert await tap.count() == 0
    assert (await http.get("/api/v1/users/me", headers=victim.headers)).status_code == 200  # the real one works


async def test_a_token_expired_within_the_10_s_leeway_is_accepted_and_past_it_refused(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """Clocks drift: `exp` (and `iat`) are checked with 10 s of leeway, no more."""
    client = await sign_up(http)
    stamp = await _stamp(primary, client.id)
    now = datetime.now(UTC)

    def expired(seconds_ago: float) -> dict[str, str]:
        past = now - timedelta(seconds=seconds_ago)
        token = jwt.encode(_claims(client.id, stamp, iat=past - timedelta(minutes=5), exp=past), SECRET, "HS256")
        return {"Authorization": f"Bearer {token}"}

    issued_ahead = jwt.encode(_claims(client.id, stamp, iat=now + timedelta(seconds=5)), SECRET, "HS256")
    within = [expired(3), {"Authorization": f"Bearer {issued_ahead}"}]  # 7 s of slack for a slow request
    assert [(await http.get("/api/v1/users/me", headers=h)).status_code for h in within] == [200, 200]
    assert (await http.get("/api/v1/users/me", headers=expired(15))).status_code == 401


async def test_the_token_of_a_deleted_user_is_401_once_the_deletion_is_applied(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)
    deleted = await http.delete("/api/v1/users/me", headers={**client.headers, **WAIT})
    assert deleted.status_code == 204
    await eventually(
        lambda: http.get("/api/v1/users/me", headers=client.headers), lambda answer: answer.status_code == 401
    )
    answer = await http.post("/api/v1/items", json={"title": "ghost"}, headers=client.headers)
    assert answer.status_code == 401


@pytest.fixture(scope="module")
def deactivator(stack: object) -> Any:
    grant = ServiceGrant.model_validate(test_settings.SERVICE_GRANTS[test_settings.SERVICE_WRITER])
    return provision(service_user(test_settings.SERVICE_WRITER, grant))


async def test_the_token_of_a_user_deactivated_by_a_granted_service_is_401(
    http: httpx.AsyncClient, primary: asyncpg.Connection, deactivator: Any
) -> None:
    client = await sign_up(http)
    command_id, message = command(
        {"user_id": client.id, "is_active": False}, user_id=deactivator.name, owner=str(client.id)
    )
    await publish_as(deactivator, "user.update", message)
    outcome = await outcome_of(primary, command_id)
    assert (outcome["status"], outcome["actor"]) == ("applied", f"service:{deactivator.name}")
    await eventually(
        lambda: http.get("/api/v1/users/me", headers=client.headers), lambda answer: answer.status_code == 401
    )
    login = await http.post("/api/v1/login/access-token", data={"username": client.email, "password": "x" * 8})
    assert login.status_code == 401  # a wrong password says nothing more
    login = await http.post("/api/v1/login/access-token", data={"username": client.email, "password": PASSWORD})
    assert login.status_code == 403  # the right one: the account is inactive


async def test_a_user_cannot_deactivate_or_reactivate_through_the_api_or_the_bus(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    client = await sign_up(http)
    answer = await http.patch("/api/v1/users/me", json={"is_active": False}, headers=client.headers)
    assert answer.status_code == 422
    # Even a command asserting the user as actor (as the gateway would) may not set is_active.
    body = {"user_id": client.id, "is_active": False}
    message = command_message(body, actor=f"user:{client.id}", owner=str(client.id))
    await publish([("user.update", message)])
    outcome = await outcome_of(primary, uuid.UUID(message.message_id))
    assert (outcome["status"], outcome["code"]) == ("rejected", "forbidden")
    assert await primary.fetchval('SELECT is_active FROM "user" WHERE id = $1', client.id) is True


async def test_two_authorization_headers_are_400_on_every_route_and_publish_nothing(http: httpx.AsyncClient) -> None:
    """Which of two headers speaks? The edge kept the last and the routes the first, so a caller added
    `Bearer x` after its real token and its writes were charged to its address, not to itself."""
    caller = await sign_up(http)
    item = (await http.post("/api/v1/items", json={"title": "mine"}, headers={**caller.headers, **WAIT})).json()
    real = caller.headers["Authorization"]
    requests = [
        ("POST", "/api/v1/items", {"title": "twice"}),  # the fast path
        ("POST", "/api/v1/items", "not json"),  # the FastAPI route
        ("GET", "/api/v1/items", None),
        ("GET", f"/api/v1/items/{item['id']}", None),
        ("PATCH", f"/api/v1/items/{item['id']}", {"title": "twice"}),
        ("DELETE", f"/api/v1/items/{item['id']}", None),
        ("GET", "/api/v1/users/me", None),
    ]
    async with tap_everything() as tap:
        for first, second in [(real, "Bearer x"), ("Bearer x", real), (real, real)]:
            for method, path, body in requests:
                headers = [("Authorization", first), ("Authorization", second), ("Content-Type", "application/json")]
                content = body if isinstance(body, str) else json.dumps(body) if body else None
                response = await http.request(method, path, content=content, headers=headers)
                assert response.status_code == 400, (method, path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert "Authorization" in response.json()["detail"]
        assert await tap.count() == 0
    assert (await http.get(f"/api/v1/items/{item['id']}", headers=caller.headers)).status_code == 200
