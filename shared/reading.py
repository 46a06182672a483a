"""Reading a database as the gateway does: statements written once in SQLAlchemy Core, run cheaply.

On PostgreSQL a statement is compiled once for asyncpg and run on a connection of a small pool of
our own: executing it through SQLAlchemy's engine costs several times the query itself (its
connection checkout alone costs about twice asyncpg's fetch, measured here). On SQLite (the embedded
default) it runs through SQLAlchemy. Either way a read is a function of a ReadConnection, which can
only run statements: read code has no way to write.
"""

import asyncio
import json
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ClauseElement

from shared.db import create_engine, is_sqlite, tls_connect_args
from shared.settings import Settings

T = TypeVar("T")
Params = Mapping[str, Any]
DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]
LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)  # the server went away
# Not reachable just now: connection failures (SQLSTATE 08), a server shutting down or starting up (57P).
UNREACHABLE = (*LOST, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)


class DatabaseUnavailable(ConnectionError):
    """The database could not answer a read just now (it restarts, or is unreachable): retry shortly."""


class ReadConnection(Protocol):
    """What a read may do: run statements and take their rows (with attribute access)."""

    async def first(self, statement: Executable, params: Params | None = None) -> Any: ...

    async def all(self, statement: Executable, params: Params | None = None) -> list[Any]: ...

    async def scalar(self, statement: Executable, params: Params | None = None) -> Any: ...


Read = Callable[[ReadConnection], Awaitable[T]]


class ReadDatabase(Protocol):
    async def run(self, read: Read[T]) -> T: ...

    async def close(self) -> None: ...


def read_database(url: str, settings: Settings) -> ReadDatabase:
    """The database at `url`, for reading: PostgreSQL through asyncpg, anything else through SQLAlchemy."""
    if is_sqlite(url):
        return EngineDatabase(create_engine(url, settings, reads=True))
    return PostgresDatabase(url, settings)


class _Compiled:
    """A statement as asyncpg runs it: SQL with $n placeholders, the bind order, the row type."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=DIALECT)
        self.sql = compiled.string
        self.names: list[str] = getattr(compiled, "positiontup", None) or []
        self.defaults = dict(compiled.params)
        selected = getattr(statement, "selected_columns", None)
        columns = list(selected.keys()) if selected is not None else []
        self.row: Any = namedtuple("Row", columns, rename=True) if columns else None  # noqa: PYI024

    def args(self, params: Params | None) -> list[Any]:
        values = {**self.defaults, **(params or {})}
        return [values[name] for name in self.names]


class _PostgresConnection:
    def __init__(self, connection: asyncpg.Connection, compiled: dict[int, _Compiled]) -> None:
        self._connection = connection
        self._compiled = compiled

    def _statement(self, statement: Executable) -> _Compiled:
        found = self._compiled.get(id(statement))
        if found is None:  # statements are module constants: keyed by identity, compiled once
            found = self._compiled[id(statement)] = _Compiled(statement)  # type: ignore[arg-type]
        return found

    async def first(self, statement: Executable, params: Params | None = None) -> Any:
        compiled = self._statement(statement)
        record = await self._connection.fetchrow(compiled.sql, *compiled.args(params))
        return None if record is None or compiled.row is None else compiled.row(*record)

    async def all(self, statement: Executable, params: Params | None = None) -> list[Any]:
        compiled = self._statement(statement)
        records = await self._connection.fetch(compiled.sql, *compiled.args(params))
        return [compiled.row(*record) for record in records] if compiled.row else []

    async def scalar(self, statement: Executable, params: Params | None = None) -> Any:
        compiled = self._statement(statement)
        return await self._connection.fetchval(compiled.sql, *compiled.args(params))


async def _decode_json(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PostgresDatabase:
    """Up to DB_POOL_SIZE + DB_MAX_OVERFLOW asyncpg connections, handed out as they are free.

    Reads leave no state on a connection (autocommit, no SET), so one goes back as it is, without
    asyncpg's pool reset (a round trip each). A connection found dead is dropped and the read run
    once more on another.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        server_settings = {"application_name": "opengovfood", "default_transaction_read_only": "on"}
        self._connect_args = {"server_settings": server_settings, **tls_connect_args(settings)}
        self._timeout = settings.db_pool_timeout
        self._limit = settings.db_pool_size + settings.db_max_overflow
        self._idle: asyncio.Queue[asyncpg.Connection | None] = asyncio.Queue()  # None: a place freed up
        self._open = 0
        self._compiled: dict[int, _Compiled] = {}

    async def run(self, read: Read[T]) -> T:
        """The read's result; DatabaseUnavailable when the server cannot be reached, even on a new connection.

        One coroutine, not one for the retry inside one for the translation: every read of every
        request passes here, and each layer of coroutines costs it a frame on every resumption."""
        try:
            for attempt in (1, 2):
                connection = await self._acquire()
                try:
                    result = await read(_PostgresConnection(connection, self._compiled))
                except LOST:
                    self._drop(connection)
                    if attempt == 2:
                        raise
                    continue
                except BaseException:
                    self._drop(connection)  # a failed statement may leave it in any state
                    raise
                self._idle.put_nowait(connection)
                return result
        except UNREACHABLE as error:
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error
        raise AssertionError("unreachable")

    async def _acquire(self) -> asyncpg.Connection:
        if not self._idle.empty() and (connection := self._idle.get_nowait()) is not None:
            return connection  # the usual case, without a timer
        async with asyncio.timeout(self._timeout):
            while True:
                connection = self._idle.get_nowait() if not self._idle.empty() else None
                if connection is None and self._open >= self._limit:
                    connection = await self._idle.get()
                if connection is not None:
                    return connection
                if self._open < self._limit:
                    return await self._connect()

    async def _connect(self) -> asyncpg.Connection:
        self._open += 1
        try:
            connection = await asyncpg.connect(self.dsn, **self._connect_args)
            await _decode_json(connection)
        except BaseException:
            self._drop(None)
            raise
        return connection

    def _drop(self, connection: asyncpg.Connection | None) -> None:
        """Forget a connection (closing it if there is one); a reader waiting for one may open another."""
        self._open -= 1
        if connection is not None:
            connection.terminate()
        self._idle.put_nowait(None)

    async def close(self) -> None:
        while not self._idle.empty():
            if (connection := self._idle.get_nowait()) is not None:
                await connection.close()


class _EngineConnection:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def first(self, statement: Executable, params: Params | None = None) -> Any:
        return (await self._connection.execute(statement, params)).first()

    async def all(self, statement: Executable, params: Params | None = None) -> list[Any]:
        return list((await self._connection.execute(statement, params)).all())

    async def scalar(self, statement: Executable, params: Params | None = None) -> Any:
        return await self._connection.scalar(statement, params)


class EngineDatabase:
    """A database read through a SQLAlchemy engine (SQLite, the embedded default)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, read: Read[T]) -> T:
        """The read's result; DatabaseUnavailable when the server cannot be reached, even on a new connection."""
        try:
            return await self._run(read)
        except UNREACHABLE as error:
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error

    async def _run(self, read: Read[T]) -> T:
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as connection:
                    return await read(_EngineConnection(connection))
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.engine.dispose()
