"""`opengovfood events tail` against the real services, as a provisioned reader: what happened to a
resource, from a timestamp or an offset, as JSON lines."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from cli.bus import gateway_user, reader_user
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.security.helpers import BusLogin, provision
from tests.support.api import WAIT, create_item, sign_up
from tests.support.polling import eventually

pytestmark = pytest.mark.rabbit


@pytest.fixture(scope="module")
def reader(stack: object) -> BusLogin:
    return provision(reader_user(f"{test_settings.VHOST}.tail-reader"))


def as_user(login: BusLogin) -> dict[str, str]:
    credentials = f"{quote(login.name, safe='')}:{quote(login.password, safe='')}"
    return {"RABBIT_URL": f"amqp://{credentials}@127.0.0.1:5672/{quote(test_settings.VHOST, safe='')}"}


def tail(reader: BusLogin, *args: str) -> list[dict[str, Any]]:
    result = opengovfood("events", "tail", "--idle", "1", *args, env=as_user(reader))
    return [json.loads(line) for line in result.stdout.splitlines()]


async def test_tail_shows_what_happened_to_an_item_from_a_timestamp_or_an_offset(
    http: httpx.AsyncClient, primary: asyncpg.Connection, reader: BusLogin
) -> None:
    before = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    owner = await sign_up(http)
    created = await create_item(http, owner, title="watched")
    item_id = created.json()["id"]
    for title in ("renamed", "renamed again"):
        patched = await http.patch(f"/api/v1/items/{item_id}", json={"title": title}, headers={**owner.headers, **WAIT})
        assert patched.status_code == 200, patched.text
    deleted = await http.delete(f"/api/v1/items/{item_id}", headers={**owner.headers, **WAIT})
    assert deleted.status_code == 204, deleted.text
    await eventually(  # the last event is confirmed by the broker (hence in the log)
        lambda: primary.fetchval(
            "SELECT count(*) FROM outbox WHERE payload->>'resource_id' = $1 AND name = 'item.deleted' "
            "AND published_at IS NOT NULL", str(item_id)
        ), lambda count: count == 1, 30,
    )  # fmt: skip

    shown = tail(reader, "--from", before, "--resource", str(item_id), "--name", "item.*")
    assert [(event["name"], event["data"].get("title")) for event in shown] == [
        ("item.created", "watched"), ("item.updated", "renamed"), ("item.updated", "renamed again"),
        ("item.deleted", None),
    ]  # fmt: skip
    assert all(uuid.UUID(event["event_id"]) for event in shown)
    offsets = [event["offset"] for event in shown]
    assert offsets == sorted(offsets)

    updates = tail(reader, "--from", str(offsets[1]), "--resource", str(item_id), "--name", "item.updated")
    assert updates == shown[1:3]  # from that offset on, and only the updates


def test_tail_refuses_a_start_it_cannot_read_and_a_user_that_may_not_read_the_log(reader: BusLogin) -> None:
    wide = as_user(reader) | {"COLUMNS": "200"}  # the usage error's box does not wrap the message
    refused = opengovfood("events", "tail", "--from", "yesterday", env=wide, check=False)
    assert refused.returncode == 2
    assert "not first, last, next, an offset or an ISO 8601 timestamp" in refused.stderr
    publisher = provision(gateway_user(f"{test_settings.VHOST}.tail-gateway"))
    refused = opengovfood("events", "tail", "--from", "first", env=as_user(publisher), check=False)
    assert refused.returncode == 1
    assert "cannot read the event log" in refused.stderr
    assert "ACCESS_REFUSED" in refused.stderr
