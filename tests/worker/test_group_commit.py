"""Group commit across partitions: batches handed over together share one transaction, and each
gets back exactly its own outcomes and events (the worker's real unit of work on SQLite)."""

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandName, CreateItem
from shared.contracts.headers import Actor
from tests.support.embedded import envelope, signed_up
from worker.envelope import Envelope
from worker.unit_of_work import UnitOfWork


class CountingUnitOfWork(UnitOfWork):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.transactions: list[int] = []

    async def _attempt(self, envelopes: Sequence[Envelope[Any]], *args: Any) -> Any:
        self.transactions.append(len(envelopes))
        return await super()._attempt(envelopes, *args)


def _creates(owner: int, partition: int, count: int) -> list[Envelope[Any]]:
    return [
        replace(
            envelope(CommandName.ITEM_CREATE, CreateItem(owner_id=owner, title=f"p{partition}-{n}"), Actor.user(owner)),
            partition=partition,
        )
        for n in range(count)
    ]


async def test_batches_ready_together_share_a_transaction_and_get_their_own_results(sqlite: AsyncEngine) -> None:
    applier = group = CountingUnitOfWork(sqlite)
    owners = [await signed_up(sqlite, f"o{n}@example.org") for n in range(3)]
    batches = [_creates(owner, partition, 2 + partition) for partition, owner in enumerate(owners)]
    results = await asyncio.gather(*(group.apply(batch) for batch in batches))
    assert applier.transactions == [2 + 3 + 4]  # one transaction for the three partitions
    for batch, applied in zip(batches, results, strict=True):
        assert [o.command_id for o in applied.outcomes] == [e.command_id for e in batch]
        assert [o.code for o in applied.outcomes] == ["created"] * len(batch)
        assert [event.command_id for event in applied.events] == [e.command_id for e in batch]


async def test_a_batch_handed_over_during_a_commit_goes_in_the_next_one(sqlite: AsyncEngine) -> None:
    applier = group = CountingUnitOfWork(sqlite)
    owner = await signed_up(sqlite, "later@example.org")
    first = asyncio.ensure_future(group.apply(_creates(owner, 0, 3)))
    for _ in range(1_000):  # until the first group's transaction has started (event-loop turns, no sleep)
        if applier.transactions:
            break
        await asyncio.sleep(0)
    second = await group.apply(_creates(owner, 1, 1))
    assert [o.code for o in (await first).outcomes] == ["created"] * 3
    assert [o.code for o in second.outcomes] == ["created"]
    assert applier.transactions == [3, 1]
