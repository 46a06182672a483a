"""Every query the gateway runs; all of them read."""

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from shared.db import ReadSession
from shared.models import Command, Item, User


async def get_user(session: ReadSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: ReadSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def get_owned_item(session: ReadSession, item_id: int, owner_id: int) -> Item | None:
    query = select(Item).where(Item.id == item_id, Item.owner_id == owner_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_items(
    session: ReadSession, owner_id: int, *, skip: int, limit: int, status: str | None
) -> tuple[Sequence[Item], int]:
    """The owner's items, newest first, and how many there are in all."""
    where = [Item.owner_id == owner_id]
    if status is not None:
        where.append(Item.status == status)
    count = await session.scalar(select(func.count()).select_from(Item).where(*where))
    page = await session.scalars(
        select(Item).where(*where).order_by(Item.created_at.desc(), Item.id.desc()).offset(skip).limit(limit)
    )
    return page.all(), int(count or 0)


async def get_command(session: ReadSession, command_id: uuid.UUID) -> Command | None:
    return await session.get(Command, command_id)
