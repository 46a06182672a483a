"""`opengovfood db …`: migrations (Alembic), backup and restore, statistics, retention."""

import asyncio
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from cli import repository
from shared.db import is_sqlite
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RETENTION_DAYS = 30
IDEMPOTENCY_KEY_DAYS = 1.0  # the README's promise: an Idempotency-Key is honoured for at least 24 h
# Created by scripts/db-roles.sql as a superuser (not trusted extensions): a restore by the owner
# role could neither drop nor create them, and the database restored into already has them.
SUPERUSER_EXTENSIONS = ("pg_stat_statements",)
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]

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


def _run(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        typer.echo(result.stderr.strip(), err=True)
        raise typer.Exit(result.returncode)
    return result.stdout


def restore_list(toc: str) -> str:
    """pg_restore's table of contents without what the database, not the backup, decides.

    Default privileges name other roles (only they or a superuser may set them) and the extensions
    only a superuser manages: scripts/db-roles.sql sets both up in each database.
    """
    skipped = (" DEFAULT ACL ", *(f" EXTENSION - {name} " for name in SUPERUSER_EXTENSIONS))
    skipped += tuple(f" COMMENT - EXTENSION {name} " for name in SUPERUSER_EXTENSIONS)
    return "".join(line for line in toc.splitlines(keepends=True) if not any(s in line for s in skipped))


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
    yes: YesOption = False,
) -> None:
    """Replace the database's contents with a backup (stop the worker first)."""
    url = database_url()
    if not yes:
        where = make_url(url).render_as_string(hide_password=True)
        typer.confirm(f"Replace everything in {where} with {file}?", abort=True)
    started = time.monotonic()
    if is_sqlite(url):
        _sqlite_copy(str(file), sqlite_path(url))
    else:
        dsn, env = libpq(url)
        with tempfile.TemporaryDirectory() as scratch:
            toc = Path(scratch) / "restore.list"
            toc.write_text(restore_list(_run(["pg_restore", "--list", str(file)], env)))
            argv = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", f"--use-list={toc}"]
            _run([*argv, f"--dbname={dsn}", str(file)], env)
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


async def _postgres_stats(conn: AsyncConnection, limit: int, width: int) -> list[str]:
    lines = [f"{'table':<20} {'rows':>12} {'bytes':>14}"]
    lines += [f"{r.name:<20} {r.rows:>12} {r.bytes:>14}" for r in await repository.table_sizes(conn)]
    top = await repository.top_queries(conn, limit, width)
    if isinstance(top, str):
        return [*lines, "", top]
    lines += ["", f"{'calls':>8} {'total ms':>12} {'mean ms':>10}  query"]
    return lines + [f"{r.calls:>8} {r.total_ms:>12} {r.mean_ms:>10}  {r.query}" for r in top]


async def _sqlite_stats(conn: AsyncConnection) -> list[str]:
    lines = [f"{'table':<20} {'rows':>12}"]
    lines += [f"{name:<20} {rows:>12}" for name, rows in await repository.sqlite_table_rows(conn)]
    return [*lines, "", "top queries need PostgreSQL's pg_stat_statements: not available on SQLite"]


@db_app.command()
def stats(
    limit: Annotated[int, typer.Option(help="top queries shown")] = 10,
    width: Annotated[int, typer.Option(help="characters of each query shown")] = 100,
) -> None:
    """Table sizes, and this database's top statements from pg_stat_statements."""
    url = database_url()

    async def work(conn: AsyncConnection) -> list[str]:
        return await (_sqlite_stats(conn) if is_sqlite(url) else _postgres_stats(conn, limit, width))

    typer.echo("\n".join(_run_async(work)))


@db_app.command()
def prune(
    older_than: Annotated[float, typer.Option("--older-than", help="days to keep")] = DEFAULT_RETENTION_DAYS,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would be deleted")] = False,
    force: Annotated[bool, typer.Option(help="allow a window shorter than the Idempotency-Key promise")] = False,
) -> None:
    """Retention: delete command outcomes, published outbox events and completed imports older than N days."""
    if older_than < IDEMPOTENCY_KEY_DAYS and not force:
        raise typer.BadParameter(
            f"{older_than:g} days is shorter than the {IDEMPOTENCY_KEY_DAYS * 24:g} h an Idempotency-Key is honoured: "
            "a retried request could apply twice. Pass --force to prune anyway.",
            param_hint="--older-than",
        )

    async def work(conn: AsyncConnection) -> dict[str, int]:
        return await repository.prune_older_than(conn, older_than, dry_run)

    verb = "would be deleted" if dry_run else "deleted"
    for table, count in _run_async(work).items():
        typer.echo(f"{table}: {count} rows {verb}")
