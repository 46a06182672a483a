"""Every query the worker runs, on a connection inside the caller's transaction."""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    Dialect,
    Integer,
    Row,
    String,
    TypeDecorator,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.models import Command, Item, OutboxEvent, User
from worker.outbox import OutboxRow, encoded

# Built once: constructing a statement per batch was a visible share of the worker's time.
_OUTCOMES = select(Command.__table__).where(Command.command_id.in_(bindparam("ids", expanding=True)))
_USERS = select(User.id, User.is_active).where(User.id.in_(bindparam("ids", expanding=True)))
_KEYS = (
    select(Command.idempotency_key, Command.actor, Command.command_id)
    .where(Command.idempotency_key.in_(bindparam("keys", expanding=True)))
    .order_by(Command.applied_at)
)


async def find_outcomes(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Row[Any, Any]]:
    """The recorded outcomes among these command ids (the inbox)."""
    rows = await conn.execute(_OUTCOMES, {"ids": list(ids)})
    return {row.command_id: row for row in rows}


async def delete_outcomes(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> None:
    """Forget dead-lettered outcomes: their commands are being applied again."""
    await conn.execute(delete(Command).where(Command.command_id.in_(list(ids))))


async def find_keys(conn: AsyncConnection, keys: Iterable[uuid.UUID]) -> dict[tuple[uuid.UUID, str], uuid.UUID]:
    """(Idempotency-Key id, actor) -> the command that used it first, among these keys."""
    found: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
    for row in await conn.execute(_KEYS, {"keys": list(keys)}):
        found.setdefault((row.idempotency_key, row.actor), row.command_id)
    return found


async def insert_outcomes(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(Command), rows)


async def get_user(conn: AsyncConnection, user_id: int) -> Any:
    """The user's id, is_active and hashed_password (None if there is none)."""
    result = await conn.execute(select(User.id, User.is_active, User.hashed_password).where(User.id == user_id))
    return result.first()


async def get_users(conn: AsyncConnection, user_ids: Iterable[int]) -> dict[int, Row[Any, Any]]:
    result = await conn.execute(_USERS, {"ids": list(user_ids)})
    return {row.id: row for row in result}


async def email_taken(conn: AsyncConnection, email: str) -> bool:
    result = await conn.execute(select(User.id).where(User.email == email))
    return result.first() is not None


async def insert_user(conn: AsyncConnection, values: Mapping[str, Any]) -> int:
    return int((await conn.execute(insert(User).values(**values).returning(User.id))).scalar_one())


async def update_user(conn: AsyncConnection, user_id: int, values: Mapping[str, Any]) -> None:
    await conn.execute(update(User).where(User.id == user_id).values(**values, updated_at=func.now()))


async def delete_user(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(User).where(User.id == user_id))


async def get_item_for_update(conn: AsyncConnection, item_id: int) -> Row[Any, Any] | None:
    """The item, locked for the rest of the transaction (None if there is none)."""
    result = await conn.execute(select(Item.__table__).where(Item.id == item_id).with_for_update())
    return result.first()


class ItemsNotInserted(Exception):
    """The database stored fewer item rows than it was given, without an error (a trigger skipped them)."""


async def insert_items(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[int]:
    """Multi-row INSERT; the ids come back in the order of the rows, one for each or ItemsNotInserted."""
    if not rows:
        return []
    result = await conn.execute(insert(Item).returning(Item.id, sort_by_parameter_order=True), rows)
    ids = [row.id for row in result]
    if len(ids) != len(rows):  # the ids could no longer be matched to their rows
        raise ItemsNotInserted(
            f"{len(rows) - len(ids)} of {len(rows)} item rows were not inserted (skipped by a trigger)"
        )
    return ids


_ANSWERING_EACH = text(
    "SELECT new_id, failed_state, failed_message, failed_detail, failed_constraint"
    " FROM opengovfood_insert_items(:titles, :descriptions, :statuses, :owners)"
).bindparams(
    bindparam("titles", type_=ARRAY(String)),
    bindparam("descriptions", type_=ARRAY(String)),
    bindparam("statuses", type_=ARRAY(String)),
    bindparam("owners", type_=ARRAY(Integer)),
)


async def insert_items_answering_each(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[Row[Any]]:
    """The rows in one call that answers each (PostgreSQL, migrations 0010 and 0011): in order, its id if
    the row was stored, else why not (failed_state, failed_message, failed_detail, failed_constraint)."""
    columns = {"titles": "title", "descriptions": "description", "statuses": "status", "owners": "owner_id"}
    arrays = {name: [row.get(column) for row in rows] for name, column in columns.items()}
    return list(await conn.execute(_ANSWERING_EACH, arrays))


async def update_item(conn: AsyncConnection, item_id: int, values: Mapping[str, Any]) -> None:
    await conn.execute(update(Item).where(Item.id == item_id).values(**values, updated_at=func.now()))


async def delete_item(conn: AsyncConnection, item_id: int) -> None:
    await conn.execute(delete(Item).where(Item.id == item_id))


async def wal_position(conn: AsyncConnection) -> str | None:
    """The primary's WAL position: the consistency token. None where there is no WAL (SQLite)."""
    if conn.dialect.name != "postgresql":
        return None
    return str((await conn.execute(text("SELECT pg_current_wal_lsn()::text"))).scalar_one())


class _EncodedJSON(TypeDecorator[str]):
    """JSON text bound as it is: an event is encoded once, for the table and for the broker."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


_INSERT = (
    insert(OutboxEvent)
    .values(payload=bindparam("body", type_=_EncodedJSON()))
    .returning(OutboxEvent.id, sort_by_parameter_order=True)
)


async def insert_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[OutboxRow]:
    """Insert outbox rows in the command batch's transaction; returned in order, with their ids."""
    if not rows:
        return []
    inserted = [{key: row[key] for key in ("command_id", "partition", "name", "body")} for row in rows]
    result = await conn.execute(_INSERT, inserted)
    return [
        OutboxRow(r.id, row["name"], row["command_id"], row["event_id"], row["request_id"], row["body"].encode())
        for r, row in zip(result, rows, strict=True)
    ]


async def mark_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Mark relayed rows. Losing the mark (a crash before it commits) only relays them again, and
    consumers deduplicate by event_id: it rides along in the next command transaction."""
    if ids:
        await conn.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(list(ids))).values(published_at=datetime.now(UTC))
        )


async def unpublished_events(
    conn: AsyncConnection, partition: int, after_id: int = 0, limit: int = 500
) -> list[OutboxRow]:
    """The next `limit` rows of this partition not yet marked published, after `after_id`, in commit order."""
    query = select(OutboxEvent.id, OutboxEvent.name, OutboxEvent.command_id, OutboxEvent.payload).where(
        OutboxEvent.partition == partition, OutboxEvent.published_at.is_(None), OutboxEvent.id > after_id
    )
    rows = await conn.execute(query.order_by(OutboxEvent.id).limit(limit))
    return [
        OutboxRow(r.id, r.name, r.command_id, r.payload["event_id"], r.payload.get("request_id"), encoded(r.payload))
        for r in rows
    ]
