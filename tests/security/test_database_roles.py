"""The database roles of scripts/db-roles.sql: the gateway cannot write, the worker only DML."""

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests import settings as test_settings
from tests.support.api import create_item, sign_up
from tests.support.polling import eventually
from tests.support.processes import ensure_database_roles

WRITES = {
    "INSERT": """INSERT INTO "user" (email, hashed_password, full_name) VALUES ('x@example.org', 'h', 'x')""",
    "UPDATE": "UPDATE item SET title = 'owned'",
    "DELETE": "DELETE FROM command",
}


@pytest.mark.parametrize("statement", sorted(WRITES))
async def test_the_gateway_role_cannot_write_on_the_primary(stack: object, statement: str) -> None:
    gateway = await asyncpg.connect(test_settings.GATEWAY_PRIMARY_DSN)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):  # first guard: read-only by default
            await gateway.execute(WRITES[statement])
        await gateway.execute("SET default_transaction_read_only = off")  # what an attacker would do
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # second guard: no grant at all
            await gateway.execute(WRITES[statement])
        assert await gateway.fetchval("SELECT count(*) >= 0 FROM item")  # reading is what it may do
    finally:
        await gateway.close()


async def test_the_worker_role_may_change_rows_but_not_the_schema(stack: object) -> None:
    worker = await asyncpg.connect(test_settings.PRIMARY_DSN.replace("postgres@", "opengovfood_worker@"))
    try:
        for ddl in ("CREATE TABLE intruder (id int)", "DROP TABLE item", "ALTER TABLE item ADD COLUMN x int"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await worker.execute(ddl)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await worker.execute("UPDATE alembic_version SET version_num = version_num")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await worker.execute("TRUNCATE item")
        async with worker.transaction():
            await worker.execute("UPDATE item SET title = title WHERE false")
    finally:
        await worker.close()


async def test_the_running_worker_and_gateway_use_those_roles(http: httpx.AsyncClient) -> None:
    """After one write and its read, the sessions the two services hold on the primary and the replica
    are their roles', and none is the superuser's."""
    client = await sign_up(http)
    item = await create_item(http, client)
    assert (await http.get(f"/api/v1/items/{item.json()['id']}", headers=client.headers)).status_code == 200

    async def sessions() -> set[str]:
        users: set[str] = set()
        for dsn in (test_settings.PRIMARY_DSN, test_settings.REPLICA_DSN):
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(
                    "SELECT usename FROM pg_stat_activity WHERE datname = $1 AND application_name = 'opengovfood'",
                    test_settings.DATABASE,
                )
            finally:
                await conn.close()
            users |= {row["usename"] for row in rows}
        return users

    users = await eventually(sessions, lambda found: {"opengovfood_worker", "opengovfood_gateway"} <= found)
    assert "postgres" not in users


@pytest.mark.parametrize("creator", ["opengovfood_owner", "postgres"])
async def test_default_privileges_cover_tables_a_later_migration_creates(
    database: str, primary: asyncpg.Connection, creator: str
) -> None:
    """A table and a sequence created after db-roles.sql ran, as a migration would (as the owner role,
    or as postgres): the worker may change its rows and draw from the sequence, the gateway only reads."""
    ensure_database_roles()
    table, sequence = f"later_{uuid.uuid4().hex[:12]}", f"later_seq_{uuid.uuid4().hex[:12]}"
    async with primary.transaction():
        await primary.execute(f"SET LOCAL ROLE {creator}")
        await primary.execute(f"CREATE SEQUENCE {sequence}")
        await primary.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, note text)")
    worker = await asyncpg.connect(test_settings.PRIMARY_DSN.replace("postgres@", "opengovfood_worker@"))
    gateway = await asyncpg.connect(test_settings.GATEWAY_PRIMARY_DSN)
    try:
        drawn = await worker.fetchval(f"SELECT nextval('{sequence}')")
        await worker.execute(f"INSERT INTO {table} VALUES ($1, 'written')", drawn)
        await worker.execute(f"UPDATE {table} SET note = 'changed' WHERE id = $1", drawn)
        assert await gateway.fetchval(f"SELECT note FROM {table} WHERE id = $1", drawn) == "changed"
        await gateway.execute("SET default_transaction_read_only = off")  # past the first guard
        for statement in (f"INSERT INTO {table} VALUES (0, 'x')", f"UPDATE {table} SET note = 'x'"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await gateway.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await gateway.fetchval(f"SELECT nextval('{sequence}')")
        assert await worker.execute(f"DELETE FROM {table} WHERE id = $1", drawn) == "DELETE 1"
    finally:
        await worker.close()
        await gateway.close()
        await primary.execute(f"DROP TABLE IF EXISTS {table}; DROP SEQUENCE IF EXISTS {sequence}")


async def test_granting_again_while_the_services_work_never_leaves_them_without_privileges(stack: object) -> None:
    """Every worker or gateway start (and an upgrade) runs scripts/db-roles.sql again while the
    others work: its REVOKE and GRANTs commit together, so no read of theirs is ever refused (before,
    the gateway answered a 500 and the worker dead-lettered a command in that gap)."""
    reader = await asyncpg.connect(test_settings.GATEWAY_PRIMARY_DSN)
    stop, reads, refused = asyncio.Event(), 0, []

    async def read_all_along() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                await reader.fetchval("SELECT count(*) FROM command")
                reads += 1
            except asyncpg.InsufficientPrivilegeError as refusal:
                refused.append(refusal)

    reading = asyncio.create_task(read_all_along())
    try:
        for _ in range(20):
            await asyncio.to_thread(ensure_database_roles)
    finally:
        stop.set()
        await reading
        await reader.close()
    assert reads > 0
    assert refused == []
