"""The TLS settings reach every broker and database connection: through local listeners that speak
TLS and require a client certificate from a throwaway CA, in front of the real RabbitMQ and PostgreSQL."""

import asyncio
import os
import ssl
import uuid
from pathlib import Path

import aio_pika
import aiormq
import pytest
from aiormq.exceptions import AMQPConnectionError
from alembic import command
from sqlalchemy import text

from gateway.infrastructure.status import StatusProbe
from shared.db import create_engine
from shared.publishing import DEFAULT_EXCHANGE, Publisher
from shared.reading import read_database
from shared.settings import Settings, get_settings
from shared.topology import DEAD_LETTER_QUEUE_NAME, declare_topology
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.support.database import alembic_config
from tests.support.tls import Certificates, make_certificates, server_context, tls_listener
from worker.connection import ConsumerConnection

RABBIT_PORT = 5672


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Certificates of another CA: the listeners do not trust them, nor does a client trust its server."""
    return make_certificates(tmp_path_factory.mktemp("tls-other"), name="other")


def rabbit_env(monkeypatch: pytest.MonkeyPatch, port: int, certificates: Certificates, client: bool = True) -> None:
    monkeypatch.setenv("RABBIT_URL", f"amqps://guest:guest@localhost:{port}/{test_settings.VHOST}")
    monkeypatch.setenv("RABBIT_TLS_CA_FILE", str(certificates.ca))
    if client:
        monkeypatch.setenv("RABBIT_TLS_CERT_FILE", str(certificates.client))
        monkeypatch.setenv("RABBIT_TLS_KEY_FILE", str(certificates.client_key))


async def test_the_broker_tls_settings_reach_the_publisher_the_consumers_and_the_topology(
    vhost: str, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_listener(RABBIT_PORT, server_context(certificates), postgres=False) as listener:
        rabbit_env(monkeypatch, listener.port, certificates)
        url = Settings().rabbit_url
        await declare_topology(url, int(test_settings.ENV["COMMAND_PARTITIONS"]))
        consumers, publisher = ConsumerConnection(url, "test-tls-consumers"), Publisher(url, "test-tls")
        try:
            channel = await (await consumers.get()).channel()
            queue = await channel.declare_queue(f"test.tls.{uuid.uuid4().hex}", exclusive=True)
            await publisher.publish(aio_pika.Message(b"over TLS"), exchange=DEFAULT_EXCHANGE, routing_key=queue.name)
            received = await queue.get(no_ack=True, timeout=5)
        finally:
            await publisher.close()
            await consumers.close()
    assert received.body == b"over TLS"
    assert listener.clients == ["test-client"] * 3  # the topology's, the consumers' and the publisher's


async def test_the_broker_tls_settings_reach_the_status_probe_and_the_cli(
    vhost: str, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    await declare_topology(test_settings.RABBIT_URL, int(test_settings.ENV["COMMAND_PARTITIONS"]))  # in clear
    async with tls_listener(RABBIT_PORT, server_context(certificates), postgres=False) as listener:
        rabbit_env(monkeypatch, listener.port, certificates)
        url = Settings().rabbit_url
        probe = StatusProbe(None, url, int(test_settings.ENV["COMMAND_PARTITIONS"]))
        try:
            queues = await probe.queues()
        finally:
            await probe.close()
        env = {name: value for name, value in os.environ.items() if name.startswith("RABBIT_")}
        listed = await asyncio.to_thread(opengovfood, "deadletters", "list", env=env)
    assert DEAD_LETTER_QUEUE_NAME in {queue["name"] for queue in queues}
    assert listed.returncode == 0
    assert listener.clients == ["test-client"] * 2  # the probe's and the CLI's


@pytest.mark.parametrize("case", ["a CA that did not sign the broker", "no client certificate"])
async def test_the_broker_connection_fails_without_the_right_files(
    vhost: str, certificates: Certificates, stranger: Certificates, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With aiormq itself, which all our connections go through with this URL (aio-pika leaves an
    unawaited close() behind a refused connection)."""
    async with tls_listener(RABBIT_PORT, server_context(certificates), postgres=False) as listener:
        if case == "no client certificate":
            rabbit_env(monkeypatch, listener.port, certificates, client=False)
        else:
            rabbit_env(monkeypatch, listener.port, stranger)
        with pytest.raises((AMQPConnectionError, ssl.SSLError, ConnectionError)):
            await aiormq.connect(Settings().rabbit_url)
    assert listener.clients == []


def database_env(monkeypatch: pytest.MonkeyPatch, port: int, mode: str, certificates: Certificates) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://postgres@localhost:{port}/{test_settings.DATABASE}")
    monkeypatch.delenv("READ_DATABASE_URL", raising=False)  # the same server: the listener
    monkeypatch.setenv("DATABASE_SSLMODE", mode)
    monkeypatch.setenv("DATABASE_SSLROOTCERT", str(certificates.ca))
    monkeypatch.setenv("DATABASE_SSLCERT", str(certificates.client))
    monkeypatch.setenv("DATABASE_SSLKEY", str(certificates.client_key))


async def _select_one(settings: Settings) -> None:
    """A write engine (the worker's) and a read database (the gateway's) each run a query."""
    engine = create_engine(settings.database_url, settings)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
    reads = read_database(settings.read_database_url, settings)
    try:
        assert await reads.run(lambda conn: conn.scalar(text("SELECT 1"))) == 1
    finally:
        await reads.close()


@pytest.mark.parametrize(("mode", "seen"), [("verify-full", "test-client"), ("verify-ca", "test-client"),
                                             ("disable", "plain")])  # fmt: skip
async def test_the_database_tls_settings_reach_both_engines(
    database: str, certificates: Certificates, mode: str, seen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_listener(test_settings.PRIMARY_PORT, server_context(certificates), postgres=True) as listener:
        database_env(monkeypatch, listener.port, mode, certificates)
        await _select_one(Settings())
    assert listener.clients == [seen, seen]


async def test_migrations_connect_with_the_database_tls_settings(
    database: str, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_listener(test_settings.PRIMARY_PORT, server_context(certificates), postgres=True) as listener:
        database_env(monkeypatch, listener.port, "verify-full", certificates)
        get_settings.cache_clear()  # alembic's env.py reads the process's settings
        try:
            await asyncio.to_thread(command.current, alembic_config(Settings().database_url))
        finally:
            get_settings.cache_clear()
    assert listener.clients == ["test-client"]


async def test_the_database_connection_fails_when_the_server_is_not_trusted(
    database: str, certificates: Certificates, stranger: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_listener(test_settings.PRIMARY_PORT, server_context(certificates), postgres=True) as listener:
        database_env(monkeypatch, listener.port, "verify-full", stranger)
        with pytest.raises(ssl.SSLCertVerificationError):
            await _select_one(Settings())
    assert listener.clients == []


def test_tls_files_need_an_amqps_url(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBIT_URL", "amqp://guest:guest@localhost:5672/")
    monkeypatch.setenv("RABBIT_TLS_CA_FILE", str(certificates.ca))
    with pytest.raises(ValueError, match="amqps"):
        Settings()


def test_the_files_travel_in_the_amqps_url(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    rabbit_env(monkeypatch, 5671, certificates)
    url = Settings().rabbit_url
    assert url.startswith("amqps://guest:guest@localhost:5671/")
    for path in (certificates.ca, certificates.client, certificates.client_key):
        assert str(Path(path)).replace("/", "%2F") in url
