"""The database roles of scripts/db-roles.sql: the gateway cannot write, the worker only DML."""

import asyncpg
import pytest

from tests import settings as test_settings

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


async def test_the_running_worker_and_gateway_use_those_roles(stack: object, primary: asyncpg.Connection) -> None:
    users = {
        row["usename"]
        for row in await primary.fetch(
            "SELECT usename FROM pg_stat_activity WHERE datname = $1 AND application_name = 'opengovfood'",
            test_settings.DATABASE,
        )
    }
    assert {"opengovfood_worker", "opengovfood_gateway"} <= users
    assert "postgres" not in users
