"""A canary password used to sign up and log in appears nowhere but as its argon2id hash."""

import uuid

import asyncpg
import httpx
from argon2 import PasswordHasher

from shared.topology import DEAD_LETTER_QUEUE_NAME
from tests.security.helpers import peek_queue, rows_containing, tap_everything
from tests.support.api import WAIT, log_in, unique_email
from tests.support.processes import LOGS


async def test_a_canary_password_is_found_nowhere_but_as_its_hash(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    email = unique_email("canary")
    async with tap_everything() as tap:
        signed_up = await http.post(
            "/api/v1/users", json={"email": email, "password": canary, "full_name": "Canary"}, headers=WAIT
        )
        assert signed_up.status_code == 201, signed_up.text
        token = await log_in(http, email, canary)
        wrong = await http.post("/api/v1/login/access-token", data={"username": unique_email(), "password": canary})
        assert wrong.status_code == 401
        changed = await http.put(
            "/api/v1/users/me/password",
            json={"current_password": canary, "new_password": canary[::-1]},
            headers={"Authorization": f"Bearer {token}", **WAIT},
        )
        assert changed.status_code == 200, changed.text
        messages = await tap.drain()
    assert messages, "the tap saw the sign-up and the password change"
    for secret in (canary, canary[::-1]):
        for message in messages:
            assert secret.encode() not in message.body
            assert secret not in repr(message.headers)
        for dead in peek_queue(DEAD_LETTER_QUEUE_NAME):
            assert secret not in dead["payload"]
        for log in LOGS.glob("*.log"):
            assert secret not in log.read_text(errors="replace"), log
        assert await rows_containing(primary, secret) == {}
    stored = await primary.fetchval('SELECT hashed_password FROM "user" WHERE email = $1', email)
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, canary[::-1])
    for log in LOGS.glob("*.log"):  # the hash travels on the bus by design, but is never logged
        assert stored not in log.read_text(errors="replace"), log
    assert await rows_containing(primary, stored) == {"user": 1}  # the audit log says "<changed>"
