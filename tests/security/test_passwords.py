"""Password change with the current password, and rehash on login when the parameters changed."""

import uuid

import asyncpg
import httpx
from argon2 import PasswordHasher

from tests.security.helpers import outcome_of, tap_everything
from tests.support.api import PASSWORD, WAIT, log_in, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually

NEW = "a brand new passphrase"
URL = "/api/v1/users/me/password"


async def test_changing_the_password_needs_the_current_one(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)

    async def change(current: str, new: str, **extra: object) -> httpx.Response:
        body = {"current_password": current, "new_password": new, **extra}
        return await http.put(URL, json=body, headers={**client.headers, **WAIT})

    async with tap_everything() as tap:
        refused = [
            await change("not it at all", NEW),
            await change(PASSWORD, PASSWORD),
            await change(PASSWORD, "short"),
            await change(PASSWORD, NEW, user_id=1),
        ]
        assert await tap.count() == 0
    assert [answer.status_code for answer in refused] == [403, 400, 422, 422]
    changed = await change(PASSWORD, NEW)
    assert changed.status_code == 200, changed.text
    old = await http.post("/api/v1/login/access-token", data={"username": client.email, "password": PASSWORD})
    assert old.status_code == 401
    assert await log_in(http, client.email, NEW)


async def test_a_hash_with_older_parameters_is_replaced_on_login(
    http: httpx.AsyncClient, primary: asyncpg.Connection, replica: asyncpg.Connection
) -> None:
    client = await sign_up(http)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await primary.execute('UPDATE "user" SET hashed_password = $1 WHERE id = $2', weak, client.id)
    await eventually(
        lambda: replica.fetchval('SELECT hashed_password FROM "user" WHERE id = $1', client.id),
        lambda seen: seen == weak,
    )
    assert await log_in(http, client.email)
    rehashed = await eventually(
        lambda: primary.fetchval('SELECT hashed_password FROM "user" WHERE id = $1', client.id),
        lambda stored: stored != weak,
    )
    assert rehashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(rehashed, PASSWORD)
    assert await log_in(http, client.email)


async def test_a_password_change_ends_every_older_token(http: httpx.AsyncClient) -> None:
    client = await sign_up(http)
    other_session = {"Authorization": f"Bearer {await log_in(http, client.email)}"}
    assert (await http.get("/api/v1/users/me", headers=other_session)).status_code == 200
    body = {"current_password": PASSWORD, "new_password": NEW}
    assert (await http.put(URL, json=body, headers={**client.headers, **WAIT})).status_code == 200
    for old in (client.headers, other_session):  # within AUTH_CACHE_S, the gateway sees the new hash
        await eventually(
            lambda old=old: http.get("/api/v1/users/me", headers=old), lambda answer: answer.status_code == 401
        )
        assert (await http.post("/api/v1/items", json={"title": "x"}, headers=old)).status_code == 401
    fresh = {"Authorization": f"Bearer {await log_in(http, client.email, NEW)}"}
    assert (await http.get("/api/v1/users/me", headers=fresh)).status_code == 200


async def test_a_rehash_never_writes_back_an_older_password(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """The login rehash replaces only the hash it read: one that arrives after a password change
    (published before it, applied after it) is refused and the new password stays."""
    client = await sign_up(http)
    read_at_login = await primary.fetchval('SELECT hashed_password FROM "user" WHERE id = $1', client.id)
    body = {"current_password": PASSWORD, "new_password": NEW}
    assert (await http.put(URL, json=body, headers={**client.headers, **WAIT})).status_code == 200
    stale_rehash = {
        "user_id": client.id,
        "hashed_password": PasswordHasher().hash(PASSWORD),
        "if_password_hash": read_at_login,
    }
    message = command_message(stale_rehash, actor=f"user:{client.id}", owner=str(client.id))
    await publish([("user.update", message)])
    outcome = await outcome_of(primary, uuid.UUID(message.message_id))
    assert (outcome["status"], outcome["code"]) == ("rejected", "precondition_failed")
    assert await log_in(http, client.email, NEW)
