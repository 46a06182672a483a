"""Databases of a test's own on the primary: created empty, given the roles' grants, dropped."""

import subprocess

import asyncpg

from tests import settings as test_settings
from tests.support.database import ROOT


async def recreate_database(name: str, create: bool = True) -> None:
    """Drop `name` (whoever is connected) and, unless create is False, create it empty."""
    admin = await asyncpg.connect(test_settings.ADMIN_DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if create:
            await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()


def grant_roles(name: str) -> None:
    """scripts/db-roles.sql in `name`, as every new database gets it."""
    subprocess.run(
        [
            "psql", "-h", "127.0.0.1", "-p", str(test_settings.PRIMARY_PORT), "-U", "postgres", "-d", name,
            "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(ROOT / "scripts" / "db-roles.sql"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
