"""A large outbox backlog (after the events side was away) drains in pages, in order: each page is
confirmed and marked before the next, so a failure midway keeps only what was not yet confirmed
(the worker's relay on the real database, with a publisher that fails on cue)."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.models import OutboxEvent
from shared.settings import get_settings
from tests import settings as test_settings
from tests.support.scratch import grant_roles
from worker.relay import PartitionRelay

BACKLOG = 1_234
PAGE = 100
PARTITION = 999  # no worker consumes it: nobody else relays these rows


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, sqlite: AsyncEngine, database: str) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        yield sqlite
        return
    grant_roles(test_settings.DATABASE)
    worker_engine = create_engine(test_settings.WORKER_DATABASE_URL, get_settings())
    yield worker_engine
    await worker_engine.dispose()


class Outbound:
    """Publishes events in the order given; the `fail_after`-th one and all after it fail (a lost channel)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.published: list[str] = []
        self.fail_after = fail_after

    async def events(self, rows: Any) -> None:
        for row in rows:
            if self.fail_after is not None and len(self.published) >= self.fail_after:
                raise ConnectionError("the channel dropped")
            self.published.append(row.event_id)


async def _backlog(engine: AsyncEngine) -> list[str]:
    events = [str(uuid.uuid4()) for _ in range(BACKLOG)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(OutboxEvent),
            [{"command_id": uuid.uuid4(), "partition": PARTITION, "name": "item.created",
              "payload": {"event_id": event_id, "name": "item.created"}} for event_id in events],
        )  # fmt: skip
    return events


async def _unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).where(OutboxEvent.partition == PARTITION, OutboxEvent.published_at.is_(None))
            )
            or 0
        )


async def test_a_backlog_drains_in_pages_and_a_failure_keeps_only_the_unconfirmed(engine: AsyncEngine) -> None:
    events = await _backlog(engine)
    failing = Outbound(fail_after=450)
    relay = PartitionRelay(PARTITION, engine, failing, page_size=PAGE)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await relay.flush()
    assert relay.unflushed
    assert await _unpublished(engine) == BACKLOG - 400  # four whole pages confirmed and marked
    working = Outbound()
    relay.outbound = working  # type: ignore[assignment]
    await relay.flush()
    assert not relay.unflushed
    assert await _unpublished(engine) == 0
    assert working.published == events[400:]  # the rest, in order, from the first page not marked
