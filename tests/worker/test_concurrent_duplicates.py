"""The same command applied by two consumers at once (a failover while the previous consumer still
commits, or a service reusing a message id across partitions): the one that loses the race answers
the winner's outcome, never dead_lettered (the worker's code on the real PostgreSQL primary)."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateItem
from shared.contracts.headers import Actor
from shared.db import create_engine
from shared.settings import get_settings
from tests import settings as test_settings
from tests.support.api import sign_up
from tests.support.embedded import envelope
from worker import repository
from worker.unit_of_work import UnitOfWork


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    worker_engine = create_engine(test_settings.WORKER_DATABASE_URL, get_settings())
    yield worker_engine
    await worker_engine.dispose()


async def test_the_consumer_that_loses_the_race_answers_the_winners_outcome(
    http: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await sign_up(http)
    command = envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner.id, title="raced"), Actor.user(owner.id))
    looked_up = repository.find_outcomes
    lookups = 0

    async def before_the_winner_committed(conn: Any, ids: Any) -> Any:
        """The first inbox lookup happens before the other consumer's commit: it finds nothing."""
        nonlocal lookups
        lookups += 1
        if lookups == 1:
            await UnitOfWork(engine).apply([command])  # the other consumer commits now
            return {}
        return await looked_up(conn, ids)

    monkeypatch.setattr(repository, "find_outcomes", before_the_winner_committed)
    [outcome] = (await UnitOfWork(engine).apply([command])).outcomes
    monkeypatch.undo()
    async with engine.connect() as conn:
        [winner] = (await repository.find_outcomes(conn, [command.command_id])).values()
    assert (outcome.status, outcome.resource_id) == ("applied", winner.resource_id)
    assert lookups == 3  # ours, the winner's, then ours again: the inbox key taken meant look again


async def test_recording_a_dead_letter_never_replaces_an_applied_outcome(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner = await sign_up(http)
    command = envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner.id, title="kept"), Actor.user(owner.id))
    [applied] = (await UnitOfWork(engine).apply([command])).outcomes
    answered = await UnitOfWork(engine).dead_letter(command, "the database was unavailable", "OSError")
    assert (answered.status, answered.resource_id) == ("applied", applied.resource_id)
