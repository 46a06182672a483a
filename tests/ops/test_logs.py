"""Logs are JSON, follow one request to the worker, and never carry a password, a JWT or a hash."""

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.contracts.headers import HEADER_REQUEST_ID
from tests.support.api import WAIT, log_in, unique_email
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import LOGS, Gateway, Worker

UNKNOWN_OWNER = 2_000_000_321  # no user has it: the command is rejected, and logged


def log_lines(service: str) -> list[str]:
    return (LOGS / f"{service}.log").read_text(errors="replace").splitlines()


def records_with(service: str, needle: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_lines(service) if needle in line]


async def test_one_request_is_followed_to_the_worker_and_no_secret_is_logged(
    http: httpx.AsyncClient, stack: tuple[Worker, Gateway], primary: asyncpg.Connection
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    email = unique_email("logs")
    request_id = f"req-{uuid.uuid4().hex}"
    signed_up = await http.post(
        "/api/v1/users",
        json={"email": email, "password": canary, "full_name": "Log Canary"},
        headers={**WAIT, "X-Request-ID": request_id},
    )
    assert signed_up.status_code == 201, signed_up.text
    assert signed_up.headers["X-Request-ID"] == request_id
    jwt = await log_in(http, email, canary)
    me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {jwt}"})
    assert me.status_code == 200
    assert me.headers["X-Request-ID"] != request_id
    hashed = await primary.fetchval('SELECT hashed_password FROM "user" WHERE email = $1', email)
    assert hashed.startswith("$argon2id$")

    worker_lines = await eventually(lambda: _async(records_with("worker", request_id)), bool, deadline_s=10)
    (applied,) = [line for line in worker_lines if line["event"] == "command applied"]
    assert applied["command"] == "user.create"
    assert applied["code"] == "created"
    command_id = applied["command_id"]
    assert uuid.UUID(command_id)
    (access,) = [line for line in records_with("gateway", request_id) if line["event"] == "request"]
    assert access["command_id"] == command_id
    assert access["status"] == 201
    assert access["route"] == "/api/v1/users"

    for service in ("gateway", "worker"):
        for line in log_lines(service):
            assert canary not in line, f"the password is in the {service} log"
            assert jwt.split(".")[2] not in line, f"the JWT (its signature) is in the {service} log"
            assert hashed.split("$")[-1] not in line, f"the hash (its digest) is in the {service} log"


async def _async(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return value


async def test_a_secret_sent_as_a_request_id_or_a_method_reaches_no_log_line(
    http: httpx.AsyncClient, stack: tuple[Worker, Gateway]
) -> None:
    """The per-request and per-command lines skip structlog's chain: they must not skip the scrubber.
    A caller chooses the X-Request-ID (echoed, logged, carried to the worker), the method, and on the
    bus the x-request-id header: a token sent there by mistake is never written out."""
    canary = uuid.uuid4().hex
    jwt_shaped = f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{canary}"
    answered = await http.get("/health/live", headers={"X-Request-ID": jwt_shaped})
    assert answered.headers["X-Request-ID"] != jwt_shaped  # a fresh id instead
    # The HTTP parser refuses a method it does not know before any route or log line of ours sees it.
    assert (await http.request(jwt_shaped, "/api/v1/items")).status_code == 400
    marker = f"marker-{uuid.uuid4().hex}"
    body = {"owner_id": UNKNOWN_OWNER, "title": "x"}
    await publish([
        ("item.create", command_message(body, actor=f"user:{UNKNOWN_OWNER}", owner=str(UNKNOWN_OWNER),
                                        headers={HEADER_REQUEST_ID: f"Bearer {canary}"})),
        ("item.create", command_message(body, actor=f"user:{UNKNOWN_OWNER}", owner=str(UNKNOWN_OWNER),
                                        headers={HEADER_REQUEST_ID: marker})),
    ])  # fmt: skip
    await eventually(lambda: _async(records_with("worker", marker)), bool, deadline_s=10)  # both written
    for service in ("gateway", "worker"):
        assert not [line for line in log_lines(service) if canary in line], f"the canary is in the {service} log"


def test_the_scrubber_masks_secrets_in_any_field() -> None:
    from shared.logging import REDACTED, scrub_secrets

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    event = {
        "event": f"login for {jwt} with $argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "password": "hunter2",
        "headers": {"Authorization": "Bearer abc.def", "x-request-id": "r1"},
        "url": "amqp://svc:s3cret@broker:5672/",
    }
    scrubbed = scrub_secrets(None, "info", event)
    assert "hunter2" not in str(scrubbed)
    assert jwt not in str(scrubbed)
    assert "aGFzaA" not in str(scrubbed)
    assert "s3cret" not in str(scrubbed)
    assert scrubbed["password"] == REDACTED
    assert scrubbed["headers"] == {"Authorization": REDACTED, "x-request-id": "r1"}


def test_log_level_defaults_to_info_and_takes_any_case() -> None:
    from pydantic import ValidationError

    from shared.settings import Settings

    assert Settings(_env_file=None).log_level == "INFO"  # type: ignore[call-arg]
    assert Settings(_env_file=None, log_level="debug").log_level == "DEBUG"  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_level="chatty")  # type: ignore[call-arg]


def _levels(path: Path) -> set[str]:
    return {json.loads(line).get("level", "?") for line in path.read_text(errors="replace").splitlines() if line}


async def test_log_level_is_honoured_by_the_gateway_and_the_worker(
    stack: tuple[Worker, Gateway], tmp_path: Path
) -> None:
    """WARNING hides the gateway's access lines (INFO); DEBUG shows the worker's libraries' debug lines."""
    quiet = Gateway(env={"LOG_LEVEL": "warning"}, name="gateway-log-warning")
    quiet.log_path.unlink(missing_ok=True)
    with quiet:
        async with httpx.AsyncClient(base_url=quiet.url, timeout=10) as client:
            for _ in range(5):
                assert (await client.get("/health/live")).status_code == 200
    assert _levels(quiet.log_path) <= {"warning", "error", "critical"}, quiet.log_path

    env = {"LOG_LEVEL": "DEBUG", "WORKER_METRICS_PORT": "0", "WORKER_HEARTBEAT_FILE": str(tmp_path / "alive")}
    chatty = Worker(env=env, name="worker-log-debug")  # a standby beside the stack's worker: it applies nothing
    chatty.log_path.unlink(missing_ok=True)
    with chatty:
        await eventually(lambda: _async_levels(chatty.log_path), lambda levels: "debug" in levels, deadline_s=10)


async def _async_levels(path: Path) -> set[str]:
    return _levels(path)
