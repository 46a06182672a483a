"""A refusal no run can be blamed for (here: PostgreSQL refuses one command's inbox row) dead-letters
that command alone; every other command of every partition in the group commits (the worker's code
on the real primary, under its least-privilege role)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateItem, CreateUser
from shared.contracts.headers import Actor
from shared.db import create_engine
from shared.settings import ServiceGrant, get_settings
from tests import settings as test_settings
from tests.support.embedded import HASH, envelope
from tests.support.scratch import grant_roles
from worker.unit_of_work import UnitOfWork


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    grant_roles(test_settings.DATABASE)
    worker_engine = create_engine(test_settings.WORKER_DATABASE_URL, get_settings())
    yield worker_engine
    await worker_engine.dispose()


async def test_a_refused_inbox_row_dead_letters_its_command_alone(engine: AsyncEngine) -> None:
    signup = CreateUser(email=f"{uuid.uuid4().hex[:8]}@example.org", hashed_password=HASH, full_name="O")
    [owner] = (await UnitOfWork(engine).apply([envelope(CommandName.USER_CREATE, signup, Actor.anonymous())])).outcomes
    assert owner.resource_id is not None
    creates = [
        replace(envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner.resource_id, title=f"t{n}"),
                         Actor.user(owner.resource_id)), partition=n % 2)
        for n in range(6)
    ]  # fmt: skip
    # An actor the inbox cannot hold (decode refuses such a publisher; this reaches past it).
    long_name = Actor("service", service="s" * 100)
    grant = ServiceGrant(commands=["item.create"], owners="*")
    refused = replace(creates[3], command_id=uuid.uuid4(), actor=long_name, grant=grant)
    unit_of_work = UnitOfWork(engine)
    first, second = await asyncio.gather(
        unit_of_work.apply([creates[0], creates[2], refused, creates[4]]),
        unit_of_work.apply([creates[1], creates[3], creates[5]]),
    )
    assert [o.status for o in first.outcomes] == ["applied", "applied", "dead_lettered", "applied"]
    assert [o.status for o in second.outcomes] == ["applied"] * 3
    assert refused.command_id in first.reasons
