"""Every query the gateway runs; all of them read, each on a ReadConnection.

The statements the hot routes run are built once, with bind parameters: a statement object built
per request would have its cache key computed again each time (a visible share of a read).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Row, Select, bindparam, func, select, tuple_

from shared.db import ReadConnection
from shared.models import Command, ImportJob, Item, User

AnySelect = Select[*tuple[Any, ...]]

USER_COLUMNS = (
    User.id, User.email, User.hashed_password, User.full_name, User.is_active, User.created_at, User.updated_at
)  # fmt: skip
# The item as the API shows it, joined with its owner's name: only the columns the answer needs.
ITEM_COLUMNS = (
    Item.id,
    Item.title,
    Item.description,
    Item.status,
    Item.owner_id,
    Item.created_at,
    Item.updated_at,
    User.full_name.label("owner_full_name"),
)
_USER = select(*USER_COLUMNS).where(User.id == bindparam("user_id"))
_USER_BY_EMAIL = select(*USER_COLUMNS).where(User.email == bindparam("email"))
_OWNED_ITEM = (
    select(*ITEM_COLUMNS)
    .join(User, User.id == Item.owner_id)
    .where(Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id"))
)
_COMMAND = select(Command.__table__).where(Command.command_id == bindparam("command_id"))
_COMMAND_BY_KEY = (
    select(Command.__table__)
    .where(Command.idempotency_key == bindparam("key_id"), Command.actor == bindparam("actor"))
    .order_by(Command.applied_at)
    .limit(1)
)
_ACTIVITY = (
    select(Command.__table__)
    .where(Command.actor == bindparam("actor"))
    .order_by(Command.applied_at.desc())
    .limit(bindparam("limit"))
)
_IMPORT = select(ImportJob.__table__).where(ImportJob.id == bindparam("import_id"))
_STATS = select(Item.status, func.count()).where(Item.owner_id == bindparam("owner_id")).group_by(Item.status)


class UserRecord(Protocol):
    """A user as the gateway reads it (a row of USER_COLUMNS)."""

    id: int
    email: str
    hashed_password: str
    full_name: str
    is_active: bool | None
    created_at: datetime | None
    updated_at: datetime | None


async def get_user(conn: ReadConnection, user_id: int) -> UserRecord | None:
    return cast(UserRecord | None, (await conn.execute(_USER, {"user_id": user_id})).first())


async def get_user_by_email(conn: ReadConnection, email: str) -> UserRecord | None:
    return cast(UserRecord | None, (await conn.execute(_USER_BY_EMAIL, {"email": email})).first())


async def get_owned_item(conn: ReadConnection, item_id: int, owner_id: int) -> Row[Any] | None:
    return (await conn.execute(_OWNED_ITEM, {"item_id": item_id, "owner_id": owner_id})).first()


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def item_filters(owner_id: int, status: str | None, q: str | None) -> list[Any]:
    """The WHERE clause of the owner listing: status filter and case-insensitive title search."""
    where: list[Any] = [Item.owner_id == owner_id]
    if status is not None:
        where.append(Item.status == status)
    if q:
        where.append(Item.title.ilike(f"%{escape_like(q)}%", escape="\\"))
    return where


def list_items_query(
    where: list[Any], *, limit: int, skip: int = 0, after: tuple[datetime, int] | None = None
) -> AnySelect:
    """Newest first; `after` is a keyset cursor (created_at, id) that replaces the offset."""
    query = (
        select(*ITEM_COLUMNS)
        .join(User, User.id == Item.owner_id)
        .where(*where)
        .order_by(Item.created_at.desc(), Item.id.desc())
        .limit(limit)
    )
    if after is not None:
        return query.where(tuple_(Item.created_at, Item.id) < tuple_(*after))
    return query.offset(skip)


async def list_items(
    conn: ReadConnection, where: list[Any], *, limit: int, skip: int, after: tuple[datetime, int] | None
) -> tuple[Sequence[Row[Any]], int]:
    """A page of the owner's items and how many match in all."""
    count = await conn.scalar(select(func.count()).select_from(Item).where(*where))
    page = await conn.execute(list_items_query(where, limit=limit, skip=skip, after=after))
    return page.all(), int(count or 0)


async def count_by_status(conn: ReadConnection, owner_id: int) -> dict[str, int]:
    rows: Sequence[Any] = (await conn.execute(_STATS, {"owner_id": owner_id})).all()
    return {str(status): int(count) for status, count in rows}


async def get_command(conn: ReadConnection, command_id: uuid.UUID) -> Row[Any] | None:
    return (await conn.execute(_COMMAND, {"command_id": command_id})).first()


async def get_command_by_key(conn: ReadConnection, key_id: uuid.UUID, actor: str) -> Row[Any] | None:
    """The first command this actor sent with this Idempotency-Key (its keyed id)."""
    return (await conn.execute(_COMMAND_BY_KEY, {"key_id": key_id, "actor": actor})).first()


async def list_activity(conn: ReadConnection, actor: str, limit: int) -> Sequence[Row[Any]]:
    """The actor's commands, newest first (index ix_command_actor_applied_at)."""
    return (await conn.execute(_ACTIVITY, {"actor": actor, "limit": limit})).all()


async def get_import(conn: ReadConnection, import_id: uuid.UUID) -> Row[Any] | None:
    return (await conn.execute(_IMPORT, {"import_id": import_id})).first()
