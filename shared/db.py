"""Async engines: the worker's writes, migrations, and the embedded database's reads."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings
from shared.tls import database_ssl


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit transactions break SAVEPOINT: transactions are begun in _sqlite_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # else ON DELETE CASCADE silently does nothing
    cursor.execute("PRAGMA journal_mode=WAL")  # the gateway reads while the worker writes
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def create_engine(url: str, settings: Settings, *, reads: bool = False) -> AsyncEngine:
    """An engine with the configured pool (the gateway reads PostgreSQL through shared/reading.py).

    A connection is not pinged before use (a round trip each time): a dead one fails, and whoever
    uses it retries (the gateway's reads once, the worker as a transient failure).
    """
    if is_sqlite(url):
        engine = create_async_engine(url, echo=settings.db_echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    server_settings = {"application_name": "opengovfood"}
    return create_async_engine(
        url,
        # Reads are single statements: autocommit spares a BEGIN and a ROLLBACK round trip per request.
        isolation_level="AUTOCOMMIT" if reads else "READ COMMITTED",
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        connect_args={"server_settings": server_settings} | tls_connect_args(settings),
    )


def tls_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's `ssl` argument from DATABASE_SSLMODE and its files (nothing: asyncpg's default)."""
    context = database_ssl(
        settings.database_sslmode, settings.database_sslrootcert, settings.database_sslcert, settings.database_sslkey
    )
    return {} if context is None else {"ssl": context}
