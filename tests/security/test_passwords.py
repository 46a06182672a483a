"""Password change with the current password, and rehash on login when the parameters changed."""

import asyncpg
import httpx
from argon2 import PasswordHasher

from tests.security.helpers import tap_everything
from tests.support.api import PASSWORD, WAIT, log_in, sign_up
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
