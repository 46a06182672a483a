"""`opengovfood db …`: migrations (Alembic), backup and restore, statistics, retention."""

import asyncio
import os
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.db import is_sqlite
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RETENTION_DAYS = 30

db_app = typer.Typer(help="The database: migrations, backup/restore, stats, prune.", no_args_is_help=True)


def database_url() -> str:
    return get_settings().database_url


def alembic_ini() -> Path:
    """ALEMBIC_CONFIG, else ./alembic.ini (the image's /app), else the source checkout's."""
    for candidate in (os.environ.get("ALEMBIC_CONFIG"), "alembic.ini", str(ROOT / "alembic.ini")):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise typer.BadParameter("alembic.ini not found: set ALEMBIC_CONFIG")


def alembic_config() -> Config:
    config = Config(str(alembic_ini()))  # its script_location is relative to the file (%(here)s)
    config.set_main_option("sqlalchemy.url", database_url().replace("%", "%%"))
    return config


@db_app.command()
def upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    command.upgrade(alembic_config(), revision)


@db_app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="a revision id, or `-- -1` for one step")]) -> None:
    """Revert migrations down to REVISION."""
    command.downgrade(alembic_config(), revision)


@db_app.command()
def current() -> None:
    """The revision the database is at."""
    command.current(alembic_config(), verbose=False)


@db_app.command()
def history() -> None:
    """Every migration, newest first."""
    command.history(alembic_config(), verbose=False)


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment that carries it (never on argv)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def sqlite_path(url: str) -> str:
    path = make_url(url).database
    if not path or path == ":memory:":
        raise typer.BadParameter(f"not a SQLite file: {url}")
    return path


def _sqlite_copy(source: str, target: str) -> None:
    """SQLite's online backup API: a consistent copy while others read and write."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    # sqlite3's context manager commits but does not close
    src.close()
    dst.close()


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        typer.echo(result.stderr.strip(), err=True)
        raise typer.Exit(result.returncode)


@db_app.command()
def backup(file: Annotated[Path, typer.Argument(help="where to write the backup")]) -> None:
    """Back up the database: pg_dump custom format on PostgreSQL, the online backup API on SQLite."""
    url, started = database_url(), time.monotonic()
    if is_sqlite(url):
        _sqlite_copy(sqlite_path(url), str(file))
    else:
        dsn, env = libpq(url)
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={file}", f"--dbname={dsn}"], env)
    typer.echo(f"backed up to {file}: {file.stat().st_size} bytes in {time.monotonic() - started:.2f}s")


@db_app.command()
def restore(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a backup from `db backup`")],
) -> None:
    """Replace the database's contents with a backup (stop the worker first)."""
    url, started = database_url(), time.monotonic()
    if is_sqlite(url):
        _sqlite_copy(str(file), sqlite_path(url))
    else:
        dsn, env = libpq(url)
        argv = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={dsn}"]
        _run([*argv, str(file)], env)
    typer.echo(f"restored {file} in {time.monotonic() - started:.2f}s")


def _run_async(work: Any) -> Any:
    async def go() -> Any:
        engine = create_async_engine(database_url())
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


TABLE_SIZES = text(
    "SELECT relname AS name, n_live_tup AS rows, pg_total_relation_size(relid) AS bytes "
    "FROM pg_stat_user_tables ORDER BY bytes DESC"
)
TOP_QUERIES = text(
    "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 2) AS mean_ms, "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query "
    "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT :limit"
)


async def _postgres_stats(conn: AsyncConnection, limit: int) -> list[str]:
    lines = [f"{'table':<20} {'rows':>12} {'bytes':>14}"]
    lines += [f"{r.name:<20} {r.rows:>12} {r.bytes:>14}" for r in await conn.execute(TABLE_SIZES)]
    installed = await conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"))
    if not installed:
        return [*lines, "", "pg_stat_statements is not installed: no top queries (CREATE EXTENSION pg_stat_statements)"]
    try:
        async with conn.begin_nested():
            rows = list(await conn.execute(TOP_QUERIES, {"limit": limit}))
    except Exception as error:  # installed but not preloaded (shared_preload_libraries)
        return [*lines, "", f"pg_stat_statements is not usable: {str(error).splitlines()[0]}"]
    lines += ["", f"{'calls':>8} {'total ms':>12} {'mean ms':>10}  query"]
    return lines + [f"{r.calls:>8} {r.total_ms:>12} {r.mean_ms:>10}  {r.query}" for r in rows]


async def _sqlite_stats(conn: AsyncConnection) -> list[str]:
    names = await conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))
    lines = [f"{'table':<20} {'rows':>12}"]
    for name in list(names):
        rows = await conn.scalar(text(f'SELECT count(*) FROM "{name}"'))
        lines.append(f"{name:<20} {rows:>12}")
    return [*lines, "", "top queries need PostgreSQL's pg_stat_statements: not available on SQLite"]


@db_app.command()
def stats(limit: Annotated[int, typer.Option(help="top queries shown")] = 10) -> None:
    """Table sizes, and the top queries from pg_stat_statements when the extension is there."""
    url = database_url()

    async def work(conn: AsyncConnection) -> list[str]:
        return await (_sqlite_stats(conn) if is_sqlite(url) else _postgres_stats(conn, limit))

    typer.echo("\n".join(_run_async(work)))


IMPORT_DONE = "state = 'completed' AND updated_at < :cutoff"
PRUNES = {
    "command": text("DELETE FROM command WHERE applied_at < :cutoff"),
    "outbox": text("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < :cutoff"),
    # A finished import's chunk claims go with it (first: they are found through the job).
    "import_chunk": text(
        f"DELETE FROM import_chunk WHERE import_id IN (SELECT id FROM import_job WHERE {IMPORT_DONE})"
    ),
    "import_job": text(f"DELETE FROM import_job WHERE {IMPORT_DONE}"),
}


async def prune_older_than(conn: AsyncConnection, days: float) -> dict[str, int]:
    """Delete command outcomes, published outbox rows and finished imports (with their chunks) older than `days`."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted: dict[str, int] = {}
    for table, statement in PRUNES.items():
        try:
            async with conn.begin_nested():
                result: Any = await conn.execute(statement, {"cutoff": cutoff})
        except Exception:  # a table this database does not have (yet)
            deleted[table] = 0
            continue
        deleted[table] = int(result.rowcount or 0)
    return deleted


@db_app.command()
def prune(
    older_than: Annotated[float, typer.Option("--older-than", help="days to keep")] = DEFAULT_RETENTION_DAYS,
) -> None:
    """Retention: delete command outcomes, published outbox events and completed imports older than N days."""

    async def work(conn: AsyncConnection) -> dict[str, int]:
        return await prune_older_than(conn, older_than)

    for table, count in _run_async(work).items():
        typer.echo(f"{table}: {count} rows deleted")
