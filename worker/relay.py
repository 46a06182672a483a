"""Relaying one partition's events in commit order, whatever fails between a commit and its relay.

The events of a batch are published after its commit, while the next batch is applied, and marked
published in that next transaction. When anything may have left events unpublished in the outbox
(a failed publish, a predecessor that crashed between commit and relay, a commit whose
acknowledgement was lost), the relay first publishes everything unpublished of the partition from
the outbox, in id order, and only then anything newer.
"""

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from worker import repository
from worker.outbound import Outbound
from worker.outbox import OutboxRow

log = logging.getLogger(__name__)


class PartitionRelay:
    """The outbox relay of one partition (one per partition consumer)."""

    def __init__(self, partition: int, engine: AsyncEngine, outbound: Outbound, page_size: int = 500) -> None:
        self.partition = partition
        self.page_size = page_size
        self.engine = engine
        self.outbound = outbound
        self.unflushed = True  # the outbox may hold events of this partition that were never published
        self._relayed: list[int] = []  # published, to be marked in the next transaction
        self._relaying: asyncio.Task[None] | None = None  # the last batch's events, going out

    def take_relayed(self) -> list[int]:
        """The ids published so far, for the next transaction to mark (give_back if it did not)."""
        relayed, self._relayed = self._relayed, []
        return relayed

    def give_back(self, ids: Sequence[int]) -> None:
        self._relayed = list(ids) + self._relayed

    def after_commit(self, events: list[OutboxRow]) -> None:
        """Publish a committed batch's events while the next batch is applied, after the earlier ones."""
        if events:
            self._relaying = asyncio.create_task(self._relay_after(self._relaying, events))

    async def flush(self) -> None:
        """Publish everything of this partition still unpublished in the outbox, after what is going out,
        a page at a time: each page is confirmed and marked before the next, so a backlog of any size
        drains, in order, and a failure keeps only what was not yet confirmed."""
        await self.settled()
        last = 0
        while True:
            async with self.engine.connect() as conn:
                rows = await repository.unpublished_events(conn, self.partition, after_id=last, limit=self.page_size)
            if not rows:
                break
            await self.outbound.events(rows)
            await self._mark([row.id for row in rows])
            last = rows[-1].id
        self.unflushed = False

    async def mark_relayed(self) -> None:
        """Mark what went out in a transaction of its own (when no command transaction is coming)."""
        await self.settled()
        relayed = self.take_relayed()
        try:
            await self._mark(relayed)
        except Exception:  # unmarked, they would be relayed again by a flush: at least once
            self.give_back(relayed)

    async def settled(self) -> None:
        """Wait until the events handed over so far went out (or failed: they stay in the outbox)."""
        if self._relaying is not None:
            await self._relaying

    async def _relay_after(self, previous: asyncio.Task[None] | None, events: list[OutboxRow]) -> None:
        if previous is not None:
            await previous  # never raises: failures are caught below
        if self.unflushed:  # an earlier relay failed: the next flush sends everything, in order
            return
        try:
            await self.outbound.events(events)
            self._relayed += [event.id for event in events]
        except Exception as error:
            self.unflushed = True
            log.warning("partition %d: events not relayed yet (%r)", self.partition, error)

    async def _mark(self, ids: Sequence[int]) -> None:
        if ids:
            async with self.engine.begin() as conn:
                await repository.mark_published(conn, ids)
