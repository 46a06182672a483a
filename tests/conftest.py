"""Fixtures: a fresh database built by Alembic, a clean vhost, and the real worker and gateway."""

from tests import settings as test_settings

test_settings.apply()  # before the app's settings are read

# The failover tests need the local cluster: `make test-cluster` starts it and runs them, `make test` does not.
collect_ignore = [] if test_settings.CLUSTER else ["cluster"]

import asyncio  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import aio_pika  # noqa: E402
import asyncpg  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402
from alembic import command  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from shared.db import create_engine  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from tests.support.database import alembic_config, reset_database  # noqa: E402
from tests.support.processes import Gateway, Worker  # noqa: E402
from tests.support.rabbit import reset_vhost  # noqa: E402


@pytest.fixture(scope="session")
def database() -> str:
    """A new opengovfood_test database on the primary (the replica follows), at Alembic head."""
    asyncio.run(reset_database())
    get_settings.cache_clear()
    return test_settings.PRIMARY_URL


@pytest.fixture(scope="session")
def vhost() -> str:
    asyncio.run(reset_vhost())
    return test_settings.RABBIT_URL


@pytest.fixture(scope="session")
def worker(database: str, vhost: str) -> Iterator[Worker]:
    with Worker() as process:
        yield process


@pytest.fixture(scope="session")
def gateway(database: str, vhost: str) -> Iterator[Gateway]:
    with Gateway() as process:
        yield process


@pytest.fixture(scope="session")
def stack(worker: Worker, gateway: Gateway) -> tuple[Worker, Gateway]:
    return worker, gateway


@pytest.fixture
async def http(stack: tuple[Worker, Gateway]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack[1].url, timeout=30) as client:
        yield client


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An embedded SQLite database built by `alembic upgrade head`, as `make run` uses by default."""
    url = f"sqlite+aiosqlite:///{tmp_path}/embedded.db"
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    engine = create_engine(url, get_settings())
    yield engine
    await engine.dispose()


@pytest.fixture
async def primary() -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(test_settings.PRIMARY_DSN)
    yield connection
    await connection.close()


@pytest.fixture
async def replica() -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(test_settings.REPLICA_DSN)
    yield connection
    await connection.close()


@pytest.fixture
async def rabbit(vhost: str) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(vhost)
    yield connection
    await connection.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop the machine's RabbitMQ or PostgreSQL run last. The replay of the event log from
    its first event runs first, while the log holds its own events only: later it would also read
    every event the suite wrote before it, tens of thousands, tens of seconds of its budget."""
    items.sort(
        key=lambda item: (
            "test_service_outages" in item.nodeid or "test_history_checker" in item.nodeid,
            "test_example_replay" not in item.nodeid,
        )
    )
