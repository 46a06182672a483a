"""Alembic environment: async, URL from the settings (or -x url=... / the config's sqlalchemy.url)."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import is_sqlite, tls_connect_args
from shared.models import Base
from shared.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """-x url=... wins, then sqlalchemy.url set by a caller, then DATABASE_URL."""
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or get_settings().database_url
    )


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave PostgreSQL-only objects (the trigram index) out of the comparison on SQLite."""
    info = getattr(obj, "info", None) or getattr(compare_to, "info", None) or {}
    return not (is_sqlite(database_url()) and info.get("postgresql_only"))


def configure(**kwargs: object) -> None:
    url = database_url()
    context.configure(
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=is_sqlite(url),  # SQLite alters tables by copying them
        compare_type=True,
        compare_server_default=not is_sqlite(url),  # SQLite reflects defaults as text
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    """Emit the DDL as SQL (`alembic upgrade head --sql`)."""
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        if is_sqlite(database_url()):
            context.execute("PRAGMA foreign_keys=OFF")  # as online: a table rebuild must not cascade
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    tls = {} if is_sqlite(database_url()) else tls_connect_args(get_settings())  # DATABASE_SSLMODE and its files
    engine = create_async_engine(database_url(), connect_args=tls)
    async with engine.connect() as connection:
        sqlite = is_sqlite(database_url())
        if sqlite:
            # SQLite's way to rebuild a table (batch mode): with foreign keys on, dropping the old
            # `user` table would cascade-delete every item. Off while migrating, checked after.
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await connection.run_sync(do_run_migrations)
        await connection.commit()  # the PRAGMA above began a transaction on SQLite
        if sqlite:
            broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"migrations left rows whose foreign key has no parent: {broken[:5]}")
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
