"""The embedded default: the worker's own code applies commands on SQLite built by Alembic."""

from sqlalchemy import func, select
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
