"""What the worker writes for each kind of event is exactly its model in shared/contracts/events.py
(the worker builds payloads as plain data, so this is where the models are held to account)."""

import dataclasses
import json
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import (
    CommandBody,
    CommandName,
    CreateItem,
    CreateUser,
    DeleteItem,
    DeleteUser,
    UpdateItem,
    UpdateUser,
)
from shared.contracts.events import EVENTS, EventName
from shared.contracts.headers import Actor
from shared.contracts.imports import ImportChunk, ImportRow
from shared.settings import ServiceGrant
from tests.support.embedded import HASH, envelope
from worker.unit_of_work import UnitOfWork

DEACTIVATOR = ServiceGrant(commands=frozenset({"user.update"}), owners="*", may_deactivate=True)


async def _apply(engine: AsyncEngine, name: CommandName, body: CommandBody, actor: Actor) -> list[dict[str, Any]]:
    """Apply one command; its events as they go on the wire."""
    command = envelope(name, body, actor)
    if actor.kind == "service":
        command = dataclasses.replace(command, grant=DEACTIVATOR, request_id="req-1")
    applied = await UnitOfWork(engine).apply([command])
    assert [o.status for o in applied.outcomes] == ["applied"], applied.outcomes
    return [json.loads(event.body) for event in applied.events]


async def test_every_kind_of_event_is_exactly_its_model(sqlite: AsyncEngine) -> None:
    signup = CreateUser(email="Events@Example.org", hashed_password=HASH, full_name="Ev")
    [created] = await _apply(sqlite, CommandName.USER_CREATE, signup, Actor.anonymous())
    user = created["resource_id"]
    owner = Actor.user(user)
    events = [created]
    events += await _apply(sqlite, CommandName.USER_UPDATE, UpdateUser(user_id=user, hashed_password=HASH), owner)
    deactivate = UpdateUser(user_id=user, is_active=False)
    events += await _apply(sqlite, CommandName.USER_UPDATE, deactivate, Actor("service", service="svc"))
    events += await _apply(
        sqlite, CommandName.USER_UPDATE, UpdateUser(user_id=user, is_active=True), Actor("service", service="svc")
    )
    events += await _apply(sqlite, CommandName.ITEM_CREATE, CreateItem(owner_id=user, title="t"), owner)
    item = events[-1]["resource_id"]
    events += await _apply(sqlite, CommandName.ITEM_UPDATE, UpdateItem(item_id=item, description=None), owner)
    rows = [ImportRow(row=2, title="a", status="completed"), ImportRow(row=3, title=""), ImportRow(row=4, title="b")]
    chunk = ImportChunk(import_id=uuid.uuid4(), seq=0, total=1, owner_id=user, rows=rows)
    events += await _apply(sqlite, CommandName.ITEM_IMPORT, chunk, owner)
    events += await _apply(sqlite, CommandName.ITEM_DELETE, DeleteItem(item_id=item), owner)
    events += await _apply(sqlite, CommandName.USER_DELETE, DeleteUser(user_id=user), owner)

    assert {event["name"] for event in events} == set(EventName)
    for event in events:
        model = EVENTS[EventName(event["name"])].model_validate(event)
        assert model.model_dump(mode="json", exclude_unset=True) == event, event["name"]
    by_name = {event["name"]: event["data"] for event in events}
    assert by_name["user.created"] == {"email": "events@example.org", "full_name": "Ev", "hashed_password": "<changed>"}
    assert by_name["item.updated"] == {"description": None}  # only what the command set
    assert [i["title"] for i in by_name["item.imported"]["items"]] == ["a", "b"]
