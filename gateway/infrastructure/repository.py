"""Every query the gateway runs; all of them read, each on a ReadConnection.

The statements the hot routes run are built once, with bind parameters: a statement object built
per request would have its cache key computed again each time (a visible share of a read).
"""

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import BigInteger, Boolean, Select, String, bindparam, func, select, text, tuple_

from shared.models import Command, ImportJob, Item, User
from shared.reading import ReadConnection

AnySelect = Select[*tuple[Any, ...]]

USER_COLUMNS = (
    User.id, User.email, User.hashed_password, User.full_name, User.is_active, User.created_at, User.updated_at
)  # fmt: skip
# The item as the API shows it, joined with its owner's name: only the columns the answer needs, in
# ItemRead's field order (gateway/http/schemas.py item_json renders a row without building the model).
ITEM_COLUMNS = (
    Item.id,
    Item.title,
    Item.description,
    Item.status,
    Item.owner_id,
    User.full_name.label("owner_full_name"),
    Item.created_at,
    Item.updated_at,
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
    return cast(UserRecord | None, await conn.first(_USER, {"user_id": user_id}))


async def get_user_by_email(conn: ReadConnection, email: str) -> UserRecord | None:
    return cast(UserRecord | None, await conn.first(_USER_BY_EMAIL, {"email": email}))


async def get_owned_item(conn: ReadConnection, item_id: int, owner_id: int) -> Any:
    return await conn.first(_OWNED_ITEM, {"item_id": item_id, "owner_id": owner_id})


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@functools.cache
def listing(status: bool, search: bool, keyset: bool) -> tuple[AnySelect, AnySelect]:
    """The page and the count of one shape of owner listing (built once per shape): newest first,
    optionally by status and title search (any case), from an offset or after a keyset cursor."""
    where = [Item.owner_id == bindparam("owner_id")]
    if status:
        where.append(Item.status == bindparam("status"))
    if search:
        where.append(Item.title.ilike(bindparam("pattern"), escape="\\"))
    # Every item listed is the caller's: their name comes with the request, not from a join per row.
    columns = [bindparam("owner_full_name", type_=String).label("owner_full_name") if c.key == "owner_full_name"
               else c for c in ITEM_COLUMNS]  # fmt: skip
    page = select(*columns).where(*where).order_by(Item.created_at.desc(), Item.id.desc()).limit(bindparam("limit"))
    if keyset:
        page = page.where(tuple_(Item.created_at, Item.id) < tuple_(bindparam("after_at"), bindparam("after_id")))
    else:
        page = page.offset(bindparam("skip"))
    return page, select(func.count()).select_from(Item).where(*where)


@dataclass(frozen=True)
class Listing:
    """What the caller asked to see of their items."""

    owner_id: int
    owner_full_name: str
    limit: int
    skip: int = 0
    status: str | None = None
    q: str | None = None
    after: tuple[datetime, int] | None = None

    def params(self) -> dict[str, Any]:
        values: dict[str, Any] = {"owner_id": self.owner_id, "limit": self.limit, "skip": self.skip}
        values["owner_full_name"] = self.owner_full_name
        if self.status is not None:
            values["status"] = self.status
        if self.q:
            values["pattern"] = f"%{escape_like(self.q)}%"
        if self.after is not None:
            values["after_at"], values["after_id"] = self.after
        return values


async def list_items(conn: ReadConnection, asked: Listing) -> tuple[list[Any], int]:
    """A page of the owner's items and how many match in all."""
    page, count = listing(asked.status is not None, bool(asked.q), asked.after is not None)
    params = asked.params()
    return await conn.all(page, params), int(await conn.scalar(count, params) or 0)


async def count_by_status(conn: ReadConnection, owner_id: int) -> dict[str, int]:
    return {str(status): int(count) for status, count in await conn.all(_STATS, {"owner_id": owner_id})}


async def get_command(conn: ReadConnection, command_id: uuid.UUID) -> Any:
    return await conn.first(_COMMAND, {"command_id": command_id})


async def get_command_by_key(conn: ReadConnection, key_id: uuid.UUID, actor: str) -> Any:
    """The first command this actor sent with this Idempotency-Key (its keyed id)."""
    return await conn.first(_COMMAND_BY_KEY, {"key_id": key_id, "actor": actor})


async def list_activity(conn: ReadConnection, actor: str, limit: int) -> list[Any]:
    """The actor's commands, newest first (index ix_command_actor_applied_at)."""
    return await conn.all(_ACTIVITY, {"actor": actor, "limit": limit})


async def get_import(conn: ReadConnection, import_id: uuid.UUID) -> Any:
    return await conn.first(_IMPORT, {"import_id": import_id})


SEEN = text("SELECT coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text")


async def replayed_position(conn: ReadConnection) -> str:
    """A token covering everything this connection sees (on the primary: its current position)."""
    return str(await conn.scalar(SEEN))


# Where the WAL stands (gateway/infrastructure/consistency.py, gateway/infrastructure/status.py): PostgreSQL only.
REPLAYED = text("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint")
WRITTEN = text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
# A standby's replay position (NULL: it replays nothing) and whether its replay is paused (asked only in
# recovery: pg_is_wal_replay_paused() raises elsewhere).
STANDBY_POSITION = text(
    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed,"
    " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused"
).columns(replayed=BigInteger, paused=Boolean)


async def replay_position(conn: ReadConnection) -> int | None:
    """How far this server has replayed the WAL; None when it replays nothing (it is no standby)."""
    return await conn.scalar(REPLAYED)  # type: ignore[no-any-return]


async def write_position(conn: ReadConnection) -> int:
    """How far this primary has written the WAL."""
    return await conn.scalar(WRITTEN)  # type: ignore[no-any-return]


async def standby_position(conn: ReadConnection) -> Any:
    """How far this server has replayed the WAL (None: it replays nothing) and whether replay is paused."""
    return await conn.first(STANDBY_POSITION)


EXPECTED_TABLES = ("user", "item", "command")
PROBES = [text(f'SELECT 1 FROM "{table}" LIMIT 1') for table in EXPECTED_TABLES]


async def has_tables(conn: ReadConnection) -> bool:
    """The tables the gateway reads are there (readiness): raises when they are not."""
    for probe in PROBES:
        await conn.scalar(probe)
    return True
