"""Group commit across partitions: batches that are ready together share one transaction.

Each partition hands over its next batch only after the previous one committed, so its order
holds; while a transaction runs, the batches of other partitions queue up and form the next one.
At moderate rates a partition's batch is often a single command: sharing the transaction (and its
round trips and commit) is then most of the worker's saving.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.outcomes import Outcome
from worker.apply import Applied, Applier
from worker.envelope import Envelope


@dataclass
class _Request:
    envelopes: Sequence[Envelope[Any]]
    relayed: Sequence[int]
    answer: asyncio.Future[Applied] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    """Same contract as Applier.apply; what differs is who shares the transaction."""

    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self._queued: list[_Request] = []
        self._committing: asyncio.Task[None] | None = None

    async def apply(self, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int] = ()) -> Applied:
        request = _Request(envelopes, relayed)
        self._queued.append(request)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_queued())
        return await request.answer

    async def record(self, row: dict[str, Any]) -> Outcome:
        """An outcome decided without applying anything (a poison message), in a transaction of its own."""
        return await self.applier.record_alone(row)

    async def _commit_queued(self) -> None:
        while self._queued:
            await asyncio.sleep(0)  # partitions made ready by the same wake-up join this group
            group, self._queued = self._queued, []
            try:
                applied = await self.applier.apply(
                    [envelope for request in group for envelope in request.envelopes],
                    [event_id for request in group for event_id in request.relayed],
                )
            except BaseException as error:  # reaches every partition of the group, which retries
                for request in group:
                    if not request.answer.done():
                        request.answer.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for request, share in zip(group, _split(applied, group), strict=True):
                if not request.answer.done():
                    request.answer.set_result(share)


def _split(applied: Applied, group: list[_Request]) -> list[Applied]:
    """Each request's outcomes (in order) and the events of its own commands."""
    shares, start = [], 0
    for request in group:
        end = start + len(request.envelopes)
        ids = {envelope.command_id for envelope in request.envelopes}
        events = [event for event in applied.events if event.command_id in ids]
        reasons = {command_id: reason for command_id, reason in applied.reasons.items() if command_id in ids}
        shares.append(Applied(applied.outcomes[start:end], events, applied.marked, applied.unrelayed, reasons))
        start = end
    return shares
