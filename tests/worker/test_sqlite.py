"""The embedded default: the worker's own code applies commands on SQLite built by Alembic."""

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateItem, CreateUser, DeleteUser
from shared.contracts.headers import Actor
from shared.models import Item, User
from tests.support.embedded import HASH, envelope
from worker.unit_of_work import UnitOfWork


async def count(engine: AsyncEngine, model: type[User] | type[Item]) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_deleting_a_user_cascades_to_items_on_sqlite(sqlite: AsyncEngine) -> None:
    signup = envelope(
        CommandName.USER_CREATE, CreateUser(email="a@b.io", hashed_password=HASH, full_name="A"), Actor.anonymous()
    )
    [created] = (await UnitOfWork(sqlite).apply([signup])).outcomes
    user_id = created.resource_id
    assert user_id is not None
    assert created.token is None  # no WAL on SQLite
    owner = Actor.user(user_id)
    items = [envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=user_id, title=f"t{i}"), owner) for i in range(3)]
    assert [o.code for o in (await UnitOfWork(sqlite).apply(items)).outcomes] == ["created"] * 3
    assert await count(sqlite, Item) == 3

    [deleted] = (
        await UnitOfWork(sqlite).apply([envelope(CommandName.USER_DELETE, DeleteUser(user_id=user_id), owner)])
    ).outcomes
    assert deleted.code == "deleted"
    assert await count(sqlite, User) == 0
    assert await count(sqlite, Item) == 0  # PRAGMA foreign_keys=ON made the cascade happen


async def test_a_redelivered_command_has_one_effect_on_sqlite(sqlite: AsyncEngine) -> None:
    signup = envelope(
        CommandName.USER_CREATE,
        CreateUser(email="c@d.io", hashed_password=HASH, full_name="C"),
        Actor.anonymous(),
    )
    first = (await UnitOfWork(sqlite).apply([signup, signup])).outcomes
    again = (await UnitOfWork(sqlite).apply([signup])).outcomes
    assert first[0] == first[1] == again[0]
    assert await count(sqlite, User) == 1


async def test_a_row_a_trigger_skips_is_dead_lettered_not_created_on_sqlite(sqlite: AsyncEngine) -> None:
    """RAISE(IGNORE) skips the row without an error: its command is dead-lettered with that reason."""
    signup = envelope(
        CommandName.USER_CREATE, CreateUser(email="s@k.io", hashed_password=HASH, full_name="S"), Actor.anonymous()
    )
    [created] = (await UnitOfWork(sqlite).apply([signup])).outcomes
    assert created.resource_id is not None
    async with sqlite.begin() as conn:
        await conn.execute(
            text("CREATE TRIGGER skip BEFORE INSERT ON item WHEN NEW.title = 'skip' BEGIN SELECT RAISE(IGNORE); END")
        )
    owner = Actor.user(created.resource_id)
    titles = ["a", "b", "skip", "c"]
    items = [
        envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=created.resource_id, title=t), owner) for t in titles
    ]
    applied = await UnitOfWork(sqlite).apply(items)
    assert [o.status for o in applied.outcomes] == ["applied", "applied", "dead_lettered", "applied"]
    assert "not inserted" in applied.reasons[applied.outcomes[2].command_id]
    async with sqlite.connect() as conn:
        stored = (await conn.execute(select(Item.id, Item.title).order_by(Item.id))).all()
    assert {(o.resource_id, title) for o, title in zip(applied.outcomes, titles, strict=True) if o.resource_id} == set(
        map(tuple, stored)
    )
