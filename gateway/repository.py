"""Every query the gateway runs; all of them read."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select, tuple_

from shared.db import ReadSession
from shared.models import Command, Item, User

AnySelect = Select[*tuple[Any, ...]]

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


async def get_user(session: ReadSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: ReadSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


def _items() -> AnySelect:
    return select(*ITEM_COLUMNS).join(User, User.id == Item.owner_id)


async def get_owned_item(session: ReadSession, item_id: int, owner_id: int) -> Row[Any] | None:
    query = _items().where(Item.id == item_id, Item.owner_id == owner_id)
    row: Row[Any] | None = (await session.execute(query)).first()
    return row


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
    query = _items().where(*where).order_by(Item.created_at.desc(), Item.id.desc()).limit(limit)
    if after is not None:
        return query.where(tuple_(Item.created_at, Item.id) < tuple_(*after))
    return query.offset(skip)


async def list_items(
    session: ReadSession, where: list[Any], *, limit: int, skip: int, after: tuple[datetime, int] | None
) -> tuple[Sequence[Row[Any]], int]:
    """A page of the owner's items and how many match in all."""
    count = await session.scalar(select(func.count()).select_from(Item).where(*where))
    page = await session.execute(list_items_query(where, limit=limit, skip=skip, after=after))
    return page.all(), int(count or 0)


async def count_by_status(session: ReadSession, owner_id: int) -> dict[str, int]:
    query = select(Item.status, func.count()).where(Item.owner_id == owner_id).group_by(Item.status)
    return {status: int(count) for status, count in (await session.execute(query)).all()}


async def get_command(session: ReadSession, command_id: uuid.UUID) -> Command | None:
    return await session.get(Command, command_id)


async def get_command_by_key(session: ReadSession, key_id: uuid.UUID, actor: str) -> Command | None:
    """The first command this actor sent with this Idempotency-Key (its keyed id)."""
    query = (
        select(Command)
        .where(Command.idempotency_key == key_id, Command.actor == actor)
        .order_by(Command.applied_at)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()
