"""Build the test database the way production does: `alembic upgrade head`."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from tests import settings as test_settings

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    return config


async def reset_database() -> None:
    admin = await asyncpg.connect(test_settings.ADMIN_DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {test_settings.DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {test_settings.DATABASE}")
    finally:
        await admin.close()
    await asyncio.to_thread(command.upgrade, alembic_config(test_settings.PRIMARY_URL), "head")
    await wait_for_replica()


async def wait_for_replica(deadline_s: float = 30.0) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    primary = await asyncpg.connect(test_settings.ADMIN_DSN)
    try:
        target = await primary.fetchval("SELECT pg_current_wal_lsn()")
    finally:
        await primary.close()
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        try:
            replica = await asyncpg.connect(test_settings.REPLICA_DSN)
            try:
                replayed = await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target)
            finally:
                await replica.close()
            if replayed:
                return
        except (asyncpg.InvalidCatalogNameError, asyncpg.ObjectNotInPrerequisiteStateError, OSError):
            pass  # the new database has not reached the replica yet (or the old one is being dropped there)
        if loop.time() > end:
            raise TimeoutError("the replica did not catch up with the primary")
        await asyncio.sleep(0.05)


WORKER_ROLE = "opengovfood_worker"


@asynccontextmanager
async def worker_lacks(primary: asyncpg.Connection, privilege: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """The worker's role loses a privilege on a table (a cause only the database sees), given back after."""
    await primary.execute(f"REVOKE {privilege} ON {table} FROM {WORKER_ROLE}")
    try:
        yield primary
    finally:
        await primary.execute(f"GRANT {privilege} ON {table} TO {WORKER_ROLE}")


@asynccontextmanager
async def items_refusing(primary: asyncpg.Connection, title: str, *, silently: bool = False) -> AsyncIterator[None]:
    """A trigger refuses any item with this title (a rule only the database knows), dropped after;
    `silently`: it skips the row (returns NULL) instead of raising, and PostgreSQL says nothing."""
    async with rows_refusing(primary, "item", "title", title, silently=silently):
        yield


@asynccontextmanager
async def rows_refusing(
    primary: asyncpg.Connection,
    table: str,
    column: str,
    value: str,
    *,
    on: str = "INSERT",
    silently: bool = False,
) -> AsyncIterator[None]:
    """A BEFORE trigger on `table` refuses a row whose `column` is `value` (on INSERT, UPDATE,
    DELETE or some: "INSERT OR UPDATE"), dropped after. `silently`: the row is skipped (NULL), no error."""
    name = f"refuse_{uuid.uuid4().hex[:12]}"
    literal = value.replace("'", "''")
    row = "OLD" if on == "DELETE" else "NEW"
    verdict = "RETURN NULL;" if silently else f"RAISE EXCEPTION 'refused {column} %', {row}.{column};"
    await primary.execute(
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF {row}.{column} = '{literal}' THEN {verdict} END IF;
        RETURN {row}; END $$"""
    )
    await primary.execute(f'CREATE TRIGGER {name} BEFORE {on} ON "{table}" FOR EACH ROW EXECUTE FUNCTION {name}()')
    try:
        yield
    finally:
        await primary.execute(f'DROP TRIGGER {name} ON "{table}"')
        await primary.execute(f"DROP FUNCTION {name}()")
