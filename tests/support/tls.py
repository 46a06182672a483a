"""TLS in front of the local services, for tests: a throwaway CA, and listeners that speak TLS to the
client and plain TCP to RabbitMQ or PostgreSQL, recording each handshake's client certificate."""

import asyncio
import contextlib
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest: length 8, code 1234.5679


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate for localhost / 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path, name: str = "test") -> Certificates:
    """Issue the three with the openssl command (EC keys: a fraction of a second)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem", "-days", "2",
             "-subj", f"/CN={name} CA", cwd=directory)  # fmt: skip
    for who, extensions in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"), ("client", "")):
        _openssl("req", *key, "-keyout", f"{name}-{who}.key", "-out", f"{name}-{who}.csr",
                 "-subj", f"/CN={name}-{who}", cwd=directory)  # fmt: skip
        (directory / f"{name}-{who}.ext").write_text(extensions + "\n" if extensions else "basicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", f"{name}-{who}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}-{who}.ext", "-out", f"{name}-{who}.pem",
                 cwd=directory)  # fmt: skip
    files = {who: directory / f"{name}-{who}" for who in ("ca", "server", "client")}
    return Certificates(
        ca=files["ca"].with_suffix(".pem"),
        server=files["server"].with_suffix(".pem"),
        server_key=files["server"].with_suffix(".key"),
        client=files["client"].with_suffix(".pem"),
        client_key=files["client"].with_suffix(".key"),
    )


def server_context(certificates: Certificates) -> ssl.SSLContext:
    """The listener's side: its certificate, and a client certificate from our CA required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certificates.ca)
    context.load_cert_chain(certificates.server, certificates.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class TlsListener:
    """What the listener saw: one entry per connection, the client certificate's CN (or "plain")."""

    port: int = 0
    clients: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def tls_listener(target_port: int, context: ssl.SSLContext, *, postgres: bool) -> AsyncIterator[TlsListener]:
    """127.0.0.1:<port> → TLS → 127.0.0.1:<target_port> in clear. PostgreSQL asks for TLS in band
    (SSLRequest, answered `S`); a PostgreSQL client that does not ask is passed through in clear."""
    seen = TlsListener()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = b""
        try:
            if postgres:
                first = await reader.readexactly(8)
                if first == SSL_REQUEST:
                    writer.write(b"S")
                    await writer.drain()
                    await writer.start_tls(context)
                    first = b""
            peer = writer.get_extra_info("peercert")
            seen.clients.append(dict(item[0] for item in peer["subject"])["commonName"] if peer else "plain")
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.close()
            return
        upstream_writer.write(first)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=None if postgres else context)
    seen.port = server.sockets[0].getsockname()[1]
    async with server:
        yield seen


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, ssl.SSLError):
        writer.close()
