"""Read-your-writes: consistency tokens are WAL positions; reads wait for the replica or use the primary."""

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import ReadSession, read_sessionmaker

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Consistency-Token"
SERVED_BY_HEADER = "X-Served-By"
# Per request, which database answered its reads ("replica" or "primary"); shown to the client.
served_by: ContextVar[list[str] | None] = ContextVar("served_by", default=None)
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
T = TypeVar("T")


def parse_token(value: str) -> int:
    """A PostgreSQL LSN ("16/B374D848") as a number; raises ValueError if it is not one."""
    match = _LSN.match(value.strip())
    if not match:
        raise ValueError("a consistency token looks like 0/16B3748")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


class ReplicaWatermark:
    """How far the replica has replayed; one poller serves every waiting request."""

    def __init__(self, engine: AsyncEngine, interval_s: float = 0.002) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.replayed = 0
        self._waiters = 0
        self._tick = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    async def reached(self, lsn: int, timeout_s: float) -> bool:
        """True once the replica has replayed past lsn, False if that takes longer than timeout_s."""
        if self.replayed >= lsn:
            return True
        self._waiters += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
            async with asyncio.timeout(timeout_s):
                while self.replayed < lsn:
                    await self._tick.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    async def read_replayed(self) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(text("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"))
        return int(value) if value is not None else 2**63  # not a standby: nothing to wait for

    async def _poll(self) -> None:
        while self._waiters > 0:
            try:
                self.replayed = max(self.replayed, await self.read_replayed())
            except Exception as error:  # replica down: waiters time out and use the primary
                log.warning("replica replay position unavailable: %r", error)
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()
            await asyncio.sleep(self.interval_s)


class Reads:
    """Where reads go: the replica, or the primary (read-only) when the replica is behind a token."""

    def __init__(self, replica: AsyncEngine, primary: AsyncEngine, *, same: bool, wait_s: float) -> None:
        self.replica = read_sessionmaker(replica)
        self.primary = read_sessionmaker(primary)
        self.watermark = None if same or replica.dialect.name != "postgresql" else ReplicaWatermark(replica)
        self.wait_s = wait_s

    async def sessionmaker_for(self, token: int | None) -> async_sessionmaker[ReadSession]:
        use_replica = token is None or self.watermark is None
        if not use_replica and self.watermark is not None and token is not None:
            use_replica = await self.watermark.reached(token, self.wait_s)
        self._note("replica" if use_replica else "primary")
        return self.replica if use_replica else self.primary

    @staticmethod
    def _note(database: str) -> None:
        noted = served_by.get()
        if noted is not None:
            noted.append(database)

    @contextlib.asynccontextmanager
    async def session(self, token: int | None) -> AsyncIterator[ReadSession]:
        """A read session that sees at least everything up to token."""
        factory = await self.sessionmaker_for(token)
        async with factory() as session:
            yield session

    async def find(self, token: int | None, query: Callable[[ReadSession], Awaitable[T | None]]) -> T | None:
        """A lookup whose miss is checked again on the primary: a miss on the replica may be lag."""
        factory = await self.sessionmaker_for(token)
        async with factory() as session:
            found = await query(session)
        if found is None and factory is not self.primary and self.watermark is not None:
            self._note("primary")
            async with self.primary() as session:
                found = await query(session)
        return found


async def replayed_position(session: ReadSession) -> str:
    """A token covering everything this session sees (on the primary: its current position)."""
    value = await session.scalar(text("SELECT coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text"))
    return str(value)


class ConsistencyHeaders:
    """ASGI middleware: echo the client's consistency token; say which database answered the reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        noted: list[str] = []
        served_by.set(noted)
        token = Headers(scope=scope).get(TOKEN_HEADER)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if token and TOKEN_HEADER not in headers and message["status"] < 400:
                    headers[TOKEN_HEADER] = token
                if noted:
                    headers[SERVED_BY_HEADER] = noted[-1]
            await send(message)

        await self.app(scope, receive, send_with_headers)
