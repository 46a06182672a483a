"""A command the database refuses for good is dead-lettered alone: its batch-mates commit together,
and its caller reads words, not the database's message (the worker's real unit of work, on SQLite)."""

import uuid
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateItem, CreateUser, UpdateItem
from shared.contracts.headers import Actor
from tests.support.embedded import HASH, envelope
from worker.unit_of_work import UnitOfWork

REFUSED = "refused by a trigger"


async def _refuse_titles(engine: AsyncEngine, title: str) -> None:
    """A failure only the database detects: a trigger that rejects one title (its message names it)."""
    async with engine.begin() as conn:
        for event in ("INSERT", "UPDATE"):
            await conn.execute(
                text(
                    f"CREATE TRIGGER refuse_{event.lower()} BEFORE {event} ON item WHEN NEW.title = '{title}' "
                    f"BEGIN SELECT RAISE(ABORT, 'title {title} {REFUSED}'); END"
                )
            )


async def _owner(engine: AsyncEngine) -> int:
    signup = CreateUser(email=f"{uuid.uuid4().hex[:8]}@example.org", hashed_password=HASH, full_name="O")
    [created] = (
        await UnitOfWork(engine).apply([envelope(CommandName.USER_CREATE, signup, Actor.anonymous())])
    ).outcomes
    assert created.resource_id is not None
    return created.resource_id


def _transactions(engine: AsyncEngine) -> list[int]:
    """Every BEGIN the engine issues, counted as it happens."""
    begun: list[int] = []

    def count(_conn: Any) -> None:
        begun.append(1)

    event.listen(engine.sync_engine, "begin", count)
    return begun


async def test_one_refused_create_among_100_is_dead_lettered_alone_in_one_transaction(sqlite: AsyncEngine) -> None:
    owner = await _owner(sqlite)
    bad = "poisoned title 42"
    await _refuse_titles(sqlite, bad)
    titles = [f"fine {n}" for n in range(100)]
    titles[42] = bad
    batch = [envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner, title=t), Actor.user(owner)) for t in titles]
    begun = _transactions(sqlite)
    applied = await UnitOfWork(sqlite).apply(batch)
    assert len(begun) == 1  # the batch-mates were not pushed into a transaction each
    statuses = [outcome.status for outcome in applied.outcomes]
    assert statuses.count("applied") == 99
    assert statuses[42] == "dead_lettered"
    refused = applied.outcomes[42]
    assert "database refused" in (refused.detail or "")
    assert bad not in (refused.detail or "")  # the caller reads words, never the values
    assert bad in applied.reasons[refused.command_id]  # operators get the whole error (dead-letter header)
    assert [event.command_id for event in applied.events] == [e.command_id for n, e in enumerate(batch) if n != 42]


async def test_a_refused_single_command_is_isolated_in_a_second_attempt(sqlite: AsyncEngine) -> None:
    owner = await _owner(sqlite)
    actor = Actor.user(owner)
    [created] = (
        await UnitOfWork(sqlite).apply(
            [envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner, title="t"), actor)]
        )
    ).outcomes
    assert created.resource_id is not None
    await _refuse_titles(sqlite, "never")
    before = envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner, title="before"), actor)
    refused = envelope(CommandName.ITEM_UPDATE, UpdateItem(item_id=created.resource_id, title="never"), actor)
    after = envelope(CommandName.ITEM_UPDATE, UpdateItem(item_id=created.resource_id, title="after"), actor)
    begun = _transactions(sqlite)
    applied = await UnitOfWork(sqlite).apply([before, refused, after])
    assert len(begun) == 2  # the attempt that met the failure, then one with that command isolated
    assert [o.status for o in applied.outcomes] == ["applied", "dead_lettered", "applied"]
    async with sqlite.connect() as conn:
        title = await conn.scalar(text("SELECT title FROM item WHERE id = :id"), {"id": created.resource_id})
    assert title == "after"
