"""Copies of one command id inside a batch (a publisher retrying after a lost confirm): each command
is applied once, every delivery is answered with its own command's outcome, and none after a copy is
skipped. The shrunk failures the generated histories (test_histories.py) found, kept as examples."""

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateItem
from shared.contracts.headers import Actor
from shared.models import Command, Item
from tests.support.embedded import envelope, signed_up
from worker.envelope import Envelope
from worker.unit_of_work import UnitOfWork


def _create(owner: int, title: str, partition: int = 0) -> Envelope[Any]:
    command = envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner, title=title), Actor.user(owner))
    return replace(command, partition=partition)


def _copy(original: Envelope[Any]) -> Envelope[Any]:
    return replace(original)  # another delivery of the same command id


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        items = await conn.scalar(select(func.count()).select_from(Item))
        outcomes = await conn.scalar(select(func.count()).select_from(Command))
    return int(items or 0), int(outcomes or 0)


async def test_a_copy_in_the_middle_of_a_batch_skips_nothing_after_it(sqlite: AsyncEngine) -> None:
    owner = await signed_up(sqlite, "copies@example.org")
    a, b, c = (_create(owner, title) for title in "ABC")
    applied = await UnitOfWork(sqlite).apply([a, b, _copy(a), c])
    assert [(o.command_id, o.code) for o in applied.outcomes] == [
        (a.command_id, "created"), (b.command_id, "created"), (a.command_id, "created"), (c.command_id, "created"),
    ]  # fmt: skip
    assert applied.outcomes[0].resource_id == applied.outcomes[2].resource_id
    assert await _counts(sqlite) == (3, 1 + 3)
    assert [event.command_id for event in applied.events] == [a.command_id, b.command_id, c.command_id]


async def test_with_group_commit_each_partition_gets_its_own_commands_outcomes(sqlite: AsyncEngine) -> None:
    first, second = await signed_up(sqlite, "p0@example.org"), await signed_up(sqlite, "p1@example.org")
    a, b, c = (_create(first, title, partition=0) for title in "ABC")
    d, e = (_create(second, title, partition=1) for title in "DE")
    unit_of_work = UnitOfWork(sqlite)
    shares = await asyncio.gather(unit_of_work.apply([a, b, _copy(a), c]), unit_of_work.apply([d, _copy(d), e]))
    for batch, share in zip(([a, b, a, c], [d, d, e]), shares, strict=True):
        assert [o.command_id for o in share.outcomes] == [command.command_id for command in batch]
        assert {o.code for o in share.outcomes} == {"created"}
    assert [event.command_id for event in shares[1].events] == [d.command_id, e.command_id]
    assert await _counts(sqlite) == (5, 2 + 5)
