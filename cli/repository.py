"""The CLI's queries: an import's progress, the operator's statistics, and what retention prunes."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.models import ImportJob

TABLE_SIZES = text(
    "SELECT relname AS name, n_live_tup AS rows, pg_total_relation_size(relid) AS bytes "
    "FROM pg_stat_user_tables ORDER BY bytes DESC"
)
# This database's statements only; other roles' statements need pg_read_all_stats (db-roles.sql).
TOP_QUERIES = text(
    "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 2) AS mean_ms, "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), :width) AS query FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY total_exec_time DESC LIMIT :limit"
)
IMPORT_DONE = "state = 'completed' AND updated_at < :cutoff"
# What retention removes, as `FROM …` clauses: counted by --dry-run, deleted otherwise.
PRUNES = {
    "command": "command WHERE applied_at < :cutoff",
    "outbox": "outbox WHERE published_at IS NOT NULL AND published_at < :cutoff",
    # A finished import's chunk claims go with it (first: they are found through the job).
    "import_chunk": f"import_chunk WHERE import_id IN (SELECT id FROM import_job WHERE {IMPORT_DONE})",
    "import_job": f"import_job WHERE {IMPORT_DONE}",
}


async def import_job(conn: AsyncConnection, import_id: uuid.UUID) -> Any:
    """An import's progress row (None until the worker has applied its first chunk)."""
    return (await conn.execute(select(ImportJob.__table__).where(ImportJob.id == import_id))).first()


async def table_sizes(conn: AsyncConnection) -> list[Row[Any]]:
    """PostgreSQL: each table's name, live rows and bytes (indexes and TOAST included), largest first."""
    return list(await conn.execute(TABLE_SIZES))


async def top_queries(conn: AsyncConnection, limit: int, width: int) -> list[Row[Any]] | str:
    """PostgreSQL: this database's costliest statements, or why pg_stat_statements cannot say."""
    installed = await conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"))
    if not installed:
        return "pg_stat_statements is not installed: no top queries (CREATE EXTENSION pg_stat_statements)"
    try:
        async with conn.begin_nested():
            return list(await conn.execute(TOP_QUERIES, {"limit": limit, "width": width}))
    except Exception as error:  # installed but not preloaded (shared_preload_libraries)
        return f"pg_stat_statements is not usable: {str(error).splitlines()[0]}"


async def sqlite_table_rows(conn: AsyncConnection) -> list[tuple[str, int]]:
    """SQLite: each table's name and row count, by name."""
    names = list(await conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")))
    return [(name, await conn.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0) for name in names]


async def prune_older_than(conn: AsyncConnection, days: float, dry_run: bool = False) -> dict[str, int]:
    """Delete (or only count) outcomes, published outbox rows and finished imports older than `days`."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    counts: dict[str, int] = {}
    for table, rows in PRUNES.items():
        statement = text(f"SELECT count(*) FROM {rows}" if dry_run else f"DELETE FROM {rows}")
        try:
            async with conn.begin_nested():
                result: Any = await conn.execute(statement, {"cutoff": cutoff})
        except Exception:  # a table this database does not have (yet)
            counts[table] = 0
            continue
        counts[table] = int(result.scalar_one() if dry_run else result.rowcount or 0)
    return counts
