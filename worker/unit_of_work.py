"""The unit of work: the batches of one or several partitions, applied in one transaction.

An attempt (worker/attempt.py) reads the inbox, collapses every copy of a command id onto its first occurrence, cuts the
new commands into runs (consecutive item.create: one statement), applies them and writes their
inbox and outbox rows, then commits. Every delivery handed in gets exactly one answer, looked up by
its command id: the outcome recorded for that id (or, for a copy carrying another body, the refusal
of a reused id). A delivery with no recorded outcome is a loud error, never a silent answer.

Around the attempt: group commit (batches handed in while a transaction runs share the next one),
capped-backoff retry of transient failures, and isolation of what fails for good — a failing run is
split under savepoints, and a failure no run can be blamed for sends every command through a
savepoint of its own with its records — so that only the command at fault is dead-lettered.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import tracing
from shared.contracts.outcomes import Outcome
from shared.models import CommandStatus
from shared.settings import ServiceGrant
from worker import repository
from worker.attempt import Attempt, Recorded, RunFailed, first_occurrences
from worker.envelope import Envelope
from worker.failures import concurrent_duplicate, for_caller, for_operator
from worker.handlers.result import dead_lettered
from worker.inbox import answer, inbox_row, outcome_of
from worker.outbox import OutboxRow
from worker.transient import is_transient

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0


class MissingOutcome(RuntimeError):
    """A delivery handed in got no outcome: a bug, never answered or acknowledged silently."""


@dataclass
class Applied:
    """What one batch gets back: an answer per delivery, in its order, and its commands' events."""

    outcomes: list[Outcome]
    events: list[OutboxRow] = field(default_factory=list)
    marked: bool = False  # the relayed events handed in were marked published in this transaction
    unrelayed: bool = False  # an attempt may have committed unseen: its events wait in the outbox
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)  # why each dead letter failed, for operators


@dataclass
class _Request:
    envelopes: Sequence[Envelope[Any]]
    relayed: Sequence[int]
    answer: asyncio.Future[Applied] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class UnitOfWork:
    """Applies batches handed in by the partitions: together, retried, isolated, each answered by id."""

    def __init__(
        self, engine: AsyncEngine, retry_limit_s: float = 600.0, grants: Mapping[str, ServiceGrant] | None = None
    ) -> None:
        self.engine = engine
        self.grants = grants or {}  # SERVICE_GRANTS: a replayed dead letter's first sender's grant
        self.retry_limit_s = retry_limit_s
        self._queued: list[_Request] = []
        self._committing: asyncio.Task[None] | None = None

    async def apply(self, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int] = ()) -> Applied:
        """An answer per delivery, in order; a command that cannot be applied comes back dead_lettered.

        `relayed`: outbox ids published since the last commit, marked in the same transaction. The
        batch joins those handed in while the current transaction runs: they share the next one.
        """
        request = _Request(envelopes, relayed)
        self._queued.append(request)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_queued())
        return await request.answer

    async def record(self, row: dict[str, Any]) -> Outcome:
        """Record an outcome decided without applying anything, in a transaction of its own; an outcome
        recorded before wins (unless it was a dead letter too)."""
        return outcome_of(row["command_id"], await self._record_alone(row, best_effort=False))

    async def dead_letter(self, envelope: Envelope[Any], detail: str, reason: str) -> Outcome:
        """Record that this command could not be applied, unless another consumer applied it meanwhile."""
        log.error("command %s (%s) dead-lettered: %s", envelope.command_id, envelope.name, reason)
        return await self.record(inbox_row(envelope, dead_lettered(detail)))

    async def _commit_queued(self) -> None:
        while self._queued:
            await asyncio.sleep(0)  # partitions made ready by the same wake-up join this group
            group, self._queued = self._queued, []
            try:
                shares = await self._apply_group(group)
            except BaseException as error:  # reaches every partition of the group, which retries
                for request in group:
                    if not request.answer.done():
                        request.answer.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for request, share in zip(group, shares, strict=True):
                if not request.answer.done():
                    request.answer.set_result(share)

    async def _apply_group(self, group: list[_Request]) -> list[Applied]:
        """Attempts until one commits: transient failures wait (capped backoff), failing runs are
        isolated, and a failure no run can be blamed for makes every command go alone."""
        envelopes = [envelope for request in group for envelope in request.envelopes]
        relayed = [event_id for request in group for event_id in request.relayed]
        started, delay = time.monotonic(), 0.05
        suspects: set[uuid.UUID] = set()
        careful = unrelayed = False
        while True:
            try:
                recorded = await self._attempt(envelopes, relayed, suspects, careful)
                break
            except RunFailed as failed:
                suspects |= failed.command_ids  # isolated in the next attempt
            except Exception as error:
                if concurrent_duplicate(error):  # another consumer committed one of these: answer its outcome
                    unrelayed = True
                    continue
                if not is_transient(error):
                    if careful:  # not any command's fault (the outbox marks, say): nothing can be applied
                        recorded = await self._dead_letter_all(envelopes, for_caller(error), for_operator(error))
                        break
                    careful = True
                    continue
                unrelayed = True  # the COMMIT may have happened without its acknowledgement reaching us
                if time.monotonic() - started > self.retry_limit_s:
                    caller = f"the database was unavailable for over {self.retry_limit_s:.0f} s; it may be replayed"
                    recorded = await self._dead_letter_all(envelopes, caller, for_operator(error))
                    break
                log.warning("database unavailable (%s); retrying in %.2fs", type(error).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        return _shares(group, recorded, marked=bool(relayed) and not recorded.unmarked, unrelayed=unrelayed)

    async def _attempt(
        self, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int], suspects: set[uuid.UUID], careful: bool
    ) -> Recorded:
        """One transaction for the group, which also marks the events relayed after the previous one.
        The token, read after COMMIT, is only needed by those who wait."""
        async with tracing.transaction(e.command_id for e in envelopes), self.engine.connect() as conn:
            async with conn.begin():
                recorded = await Attempt(conn, suspects, careful, self.grants).apply(envelopes)
                await repository.mark_published(conn, relayed)
            if any(envelope.reply_to for envelope in envelopes):
                recorded.token = await self._token(conn)
        return recorded

    async def _token(self, conn: AsyncConnection) -> str | None:
        """The primary's WAL position after the commit. Any later reading is at or past the commit
        record, so a lost connection is no reason to apply again: read it on another, or give none."""
        try:
            return await repository.wal_position(conn)
        except Exception as error:
            log.warning("WAL position not read after commit (%r); trying another connection", error)
        try:
            async with self.engine.connect() as fresh:
                return await repository.wal_position(fresh)
        except Exception:
            return None

    async def _dead_letter_all(self, envelopes: Sequence[Envelope[Any]], caller: str, reason: str) -> Recorded:
        """Nothing of the group can be applied: each command recorded dead_lettered on its own (unless
        another consumer applied it meanwhile: then that outcome is the answer)."""
        recorded = Recorded({}, unmarked=True)
        for envelope in first_occurrences(envelopes):
            log.error("command %s (%s) dead-lettered: %s", envelope.command_id, envelope.name, reason)
            row = await self._record_alone(inbox_row(envelope, dead_lettered(caller)), best_effort=True)
            recorded.rows[envelope.command_id] = row
            if row.status == CommandStatus.DEAD_LETTERED:
                recorded.reasons[envelope.command_id] = reason
        return recorded

    async def _record_alone(self, row: dict[str, Any], *, best_effort: bool) -> Any:
        """The inbox row now standing for this command: an earlier outcome wins over a dead letter.

        A transient failure raises (the batch is handled again: nothing is acknowledged without its
        outcome), unless `best_effort`: the retry limit has passed and the dead-letter queue keeps it."""
        try:
            async with self.engine.begin() as conn:
                existing = await repository.find_outcomes(conn, [row["command_id"]])
                prior = existing.get(row["command_id"])
                if prior is not None and prior.status != CommandStatus.DEAD_LETTERED:
                    return prior
                if prior is None:
                    await repository.insert_outcomes(conn, [row])
        except Exception as error:
            if is_transient(error) and not best_effort:
                raise
            log.exception("could not record the outcome of %s", row["command_id"])
        return SimpleNamespace(**row)


def _shares(group: list[_Request], recorded: Recorded, *, marked: bool, unrelayed: bool) -> list[Applied]:
    """Each request's answers, found by command id, and the events of the commands it brought first."""
    first_request: dict[uuid.UUID, int] = {}
    for index, request in enumerate(group):
        for envelope in request.envelopes:
            first_request.setdefault(envelope.command_id, index)
    shares = []
    for index, request in enumerate(group):
        outcomes = []
        for envelope in request.envelopes:
            row = recorded.rows.get(envelope.command_id)
            if row is None:
                raise MissingOutcome(f"no outcome for command {envelope.command_id} ({envelope.name})")
            outcomes.append(answer(envelope, row, recorded.token))
        events = [event for event in recorded.events if first_request[event.command_id] == index]
        ids = {envelope.command_id for envelope in request.envelopes}
        reasons = {command_id: why for command_id, why in recorded.reasons.items() if command_id in ids}
        shares.append(Applied(outcomes, events, marked, unrelayed or recorded.unmarked, reasons))
    return shares
