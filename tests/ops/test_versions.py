"""Schema versions: the current (2) and the previous (1) are applied; anything else is dead-lettered."""

import json
import uuid

import asyncpg
import httpx
import pytest

from shared.contracts.commands import SCHEMA_VERSION, CommandName, UpdateItem
from shared.contracts.versions import PREVIOUS_SCHEMA_VERSION
from tests.ops.cli import opengovfood
from tests.support.api import create_item, sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker
from worker.catalogue import CATALOGUE


def test_versions_are_two_and_one() -> None:
    assert (SCHEMA_VERSION, PREVIOUS_SCHEMA_VERSION) == (2, 1)


def test_a_version_1_body_is_upcast_keeping_only_what_it_set() -> None:
    upcast_body = CATALOGUE[CommandName.ITEM_UPDATE].read(PREVIOUS_SCHEMA_VERSION, b'{"item_id": 3, "title": "t"}')
    assert isinstance(upcast_body, UpdateItem)
    assert upcast_body.model_dump(exclude_unset=True) == {"item_id": 3, "title": "t"}


def dead_letters() -> dict[str, str]:
    out = opengovfood("deadletters", "list", "--json").stdout
    return {letter["id"]: letter["reason"] for letter in map(json.loads, out.splitlines())}


@pytest.mark.rabbit
async def test_current_and_previous_versions_apply_others_are_dead_lettered(
    http: httpx.AsyncClient, stack: tuple[Worker, Gateway], primary: asyncpg.Connection
) -> None:
    client = await sign_up(http)
    item_id = (await create_item(http, client)).json()["id"]
    actor, owner = f"user:{client.id}", str(client.id)

    def update(version: str, body: dict[str, object]) -> tuple[uuid.UUID, tuple[str, object]]:
        command_id = uuid.uuid4()
        headers = {"x-schema-version": version}
        message = command_message(
            {"item_id": item_id, **body}, actor=actor, owner=owner, command_id=command_id, headers=headers
        )
        return command_id, ("item.update", message)

    v1, v1_message = update("1", {"title": "sent as version 1"})
    v2, v2_message = update("2", {"status": "completed"})
    v1_with_v2_field, v1_bad = update("1", {"title": "x", "if_match": '"abc"'})
    v0, v0_message = update("0", {"title": "x"})
    v3, v3_message = update("3", {"title": "x"})
    await publish([v1_message, v2_message, v1_bad, v0_message, v3_message])  # type: ignore[list-item]

    async def statuses() -> dict[uuid.UUID, str]:
        rows = await primary.fetch("SELECT command_id, status FROM command WHERE command_id = ANY($1)", [v1, v2])
        return {row["command_id"]: row["status"] for row in rows}

    assert await eventually(statuses, lambda found: len(found) == 2) == {v1: "applied", v2: "applied"}
    item = await primary.fetchrow("SELECT title, status FROM item WHERE id = $1", item_id)
    assert (item["title"], item["status"]) == ("sent as version 1", "completed")

    letters = await eventually(
        _async(dead_letters), lambda found: {str(v0), str(v3), str(v1_with_v2_field)} <= set(found)
    )
    assert "unsupported x-schema-version '0'" in letters[str(v0)]
    assert "unsupported x-schema-version '3'" in letters[str(v3)]
    assert "schema version 1" in letters[str(v1_with_v2_field)]
    assert "if_match" in letters[str(v1_with_v2_field)]


def _async(probe):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        return probe()

    return run
