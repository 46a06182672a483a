"""A TCP proxy the tests can cut: the service behind it becomes unreachable without stopping it."""

import asyncio
import contextlib
import threading
from types import TracebackType

from tests.support.processes import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target>; cut() drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._open = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> "TcpProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        self._open = False
        asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop).result(5)

    def restore(self) -> None:
        self._open = True

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if not self._open:
            client_writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


COMMIT = b"Q\x00\x00\x00\x0cCOMMIT;\x00"  # the simple-protocol query asyncpg sends to commit


class LosesCommitAcks(TcpProxy):
    """A proxy to PostgreSQL that, once armed, forwards the next COMMIT and then cuts that
    connection instead of forwarding the answer: the transaction commits, its client never learns it."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self._armed = threading.Event()
        self.acks_lost = 0

    def arm(self) -> None:
        self._armed.set()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        committing = asyncio.Event()

        async def to_server() -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await client_reader.read(65536):
                    if self._armed.is_set() and COMMIT in data:
                        self._armed.clear()
                        committing.set()
                    upstream_writer.write(data)
                    await upstream_writer.drain()
            upstream_writer.close()

        async def to_client() -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await upstream_reader.read(65536):
                    if committing.is_set():  # PostgreSQL answered the COMMIT: that answer is lost
                        self.acks_lost += 1
                        break
                    client_writer.write(data)
                    await client_writer.drain()
            client_writer.close()
            upstream_writer.close()

        await asyncio.gather(to_server(), to_client())


class StartingUp(TcpProxy):
    """Once cut, new connections are answered as PostgreSQL answers them while it restarts:
    FATAL 57P03 "the database system is starting up" (after declining TLS, as it may)."""

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._open:
            await super()._serve(client_reader, client_writer)
            return
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                length = int.from_bytes(await client_reader.readexactly(4), "big")
                request = await client_reader.readexactly(length - 4)
                if request[:4] == (80877103).to_bytes(4, "big"):  # SSLRequest: no TLS here
                    client_writer.write(b"N")
                    continue
                fields = b"SFATAL\x00VFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00"
                client_writer.write(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)
                await client_writer.drain()
                break
        client_writer.close()
