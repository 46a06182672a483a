"""The unit of work: the batches of one or several partitions, applied in one transaction.

An attempt reads the inbox, collapses every copy of a command id onto its first occurrence, cuts the
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import tracing
from shared.contracts.headers import Actor
from shared.contracts.outcomes import Outcome
from shared.models import CommandStatus
from shared.settings import ServiceGrant
from worker import outbox, repository
from worker.catalogue import CATALOGUE, Command
from worker.envelope import Envelope
from worker.failures import concurrent_duplicate, for_caller, for_operator
from worker.handlers.result import Result, dead_lettered
from worker.inbox import KEY_REUSED_RESULT, answer, inbox_row, outcome_of
from worker.outbox import OutboxRow
from worker.transient import is_transient

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0


class RunFailed(Exception):
    """A run applied outside a savepoint failed for good: the next attempt isolates its commands."""

    def __init__(self, run: Sequence[Envelope[Any]], error: BaseException) -> None:
        super().__init__(f"{run[0].name} failed: {error!r}")
        self.command_ids = {envelope.command_id for envelope in run}


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
class _Recorded:
    """What the group's transaction recorded: each command id's inbox row, events, dead-letter reasons."""

    rows: dict[uuid.UUID, Any]
    events: list[OutboxRow] = field(default_factory=list)
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)
    token: str | None = None
    unmarked: bool = False  # recorded outside the group's transaction (dead-lettered all): nothing marked


@dataclass
class _Request:
    envelopes: Sequence[Envelope[Any]]
    relayed: Sequence[int]
    answer: asyncio.Future[Applied] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def first_occurrences(envelopes: Sequence[Envelope[Any]]) -> list[Envelope[Any]]:
    """Each command id once, at its first occurrence, in order: copies (a publisher's retries) are
    answered with the first's outcome and never cut a run."""
    seen: dict[uuid.UUID, Envelope[Any]] = {}
    for envelope in envelopes:
        seen.setdefault(envelope.command_id, envelope)
    return list(seen.values())


def runs(new: Sequence[Envelope[Any]], suspects: set[uuid.UUID]) -> Iterator[list[Envelope[Any]]]:
    """Split distinct new commands, in order, into runs the handlers take at once: consecutive
    commands of one batching name (item.create: one multi-row INSERT), else one command each."""
    run: list[Envelope[Any]] = []
    for envelope in new:
        groupable = CATALOGUE[envelope.name].batches and envelope.command_id not in suspects
        if run and (not groupable or envelope.name != run[0].name):
            yield run
            run = []
        if groupable:
            run.append(envelope)
        else:
            yield [envelope]
    if run:
        yield run


class _Attempt:
    """One attempt at a group, inside the caller's transaction."""

    def __init__(
        self, conn: AsyncConnection, suspects: set[uuid.UUID], careful: bool, grants: Mapping[str, ServiceGrant]
    ) -> None:
        self.conn = conn
        self.grants = grants
        self.suspects = suspects
        self.careful = careful  # no failure could be blamed on a run: each command alone, with its records
        self.keys: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self.noted: list[tuple[dict[str, Any], dict[str, Any] | None]] = []  # inbox row, event: not yet written
        self.recorded = _Recorded({})

    async def apply(self, envelopes: Sequence[Envelope[Any]]) -> _Recorded:
        distinct = first_occurrences(envelopes)
        found = await repository.find_outcomes(self.conn, [e.command_id for e in distinct])
        retried = {command_id for command_id, row in found.items() if row.status == CommandStatus.DEAD_LETTERED}
        if retried:  # a dead letter replayed (or retried with its key) is applied anew, at its replay
            await repository.delete_outcomes(self.conn, retried)
        self.recorded.rows = {command_id: row for command_id, row in found.items() if command_id not in retried}
        new = [self._as_first_sent(e, found) for e in distinct if e.command_id not in self.recorded.rows]
        await self._find_used_keys(new)
        if self.careful:
            for envelope in new:
                await self._alone_with_records(envelope)
        else:
            for run in runs(new, self.suspects):
                self._note(run, await self._run(CATALOGUE[run[0].name], run))
        await self._write_noted()
        return self.recorded

    def _as_first_sent(self, envelope: Envelope[Any], found: dict[uuid.UUID, Any]) -> Envelope[Any]:
        """A dead letter an operator replays is applied as the actor that first sent it, with its grant."""
        replayer = envelope.grant if envelope.actor.kind == "service" else None
        prior = found.get(envelope.command_id)
        if prior is None or replayer is None or not replayer.may_replay:
            return envelope
        actor = Actor.recorded(prior.actor)
        grant = self.grants.get(actor.service or "") if actor.kind == "service" else None
        log.info("command %s replayed by %s as %s", envelope.command_id, envelope.actor, actor)
        return replace(envelope, actor=actor, grant=grant)

    async def _find_used_keys(self, new: Sequence[Envelope[Any]]) -> None:
        """(Idempotency-Key id, actor) -> the command that used it first, for the keyed new commands."""
        keys = {e.idempotency_key for e in new if e.idempotency_key is not None}
        if keys:
            self.keys = await repository.find_keys(self.conn, keys)

    def _note(self, run: Sequence[Envelope[Any]], results: Sequence[Result]) -> None:
        """The inbox row and event of each command of a run, written with the group (_write_noted)."""
        for envelope, result in zip(run, results, strict=True):
            if result.reason is not None:
                self.recorded.reasons[envelope.command_id] = result.reason
                log.error("command %s (%s) dead-lettered: %s", envelope.command_id, envelope.name, result.reason)
            event = outbox.event_row(envelope, result, CATALOGUE[envelope.name].event)
            self.noted.append((inbox_row(envelope, result), event))

    async def _write_noted(self) -> None:
        rows = [row for row, _ in self.noted]
        await repository.insert_outcomes(self.conn, rows)
        self.recorded.events += await repository.insert_events(self.conn, [event for _, event in self.noted if event])
        self.recorded.rows |= {row["command_id"]: SimpleNamespace(**row) for row in rows}
        self.noted = []

    async def _run(self, command: Command[Any], run: list[Envelope[Any]]) -> list[Result]:
        """Results of a run, in order; a key already used by another command rejects that command."""
        reused = [self._claim_key(envelope) for envelope in run]
        if any(reused):  # runs hold new commands of one name: apply the others, answer these
            fresh = [envelope for envelope, refused in zip(run, reused, strict=True) if refused is None]
            applied = iter(await self._isolated(command, fresh) if fresh else [])
            return [refused or next(applied) for refused in reused]
        if len(run) > 1 or run[0].command_id in self.suspects:
            return await self._isolated(command, run)
        try:
            return await command.handle(self.conn, run)
        except Exception as error:
            if is_transient(error) or concurrent_duplicate(error):
                raise
            raise RunFailed(run, error) from error

    async def _isolated(self, command: Command[Any], run: list[Envelope[Any]]) -> list[Result]:
        """Apply under a savepoint; if the run fails for good, apply each command alone (the
        command's own way, else by splitting the run) so that only the failing ones are dead-lettered."""
        try:
            async with self.conn.begin_nested():
                return await command.handle(self.conn, run)
        except Exception as error:
            if is_transient(error) or concurrent_duplicate(error):
                raise
            if len(run) == 1:
                return [dead_lettered(for_caller(error), for_operator(error))]
            if command.isolate is not None:
                return await command.isolate(self.conn, run)
            middle = len(run) // 2
            return await self._isolated(command, run[:middle]) + await self._isolated(command, run[middle:])

    async def _alone_with_records(self, envelope: Envelope[Any]) -> None:
        """One command with its inbox and outbox rows under a savepoint of its own: whatever is refused,
        even its inbox row, dead-letters this command only."""
        try:
            async with self.conn.begin_nested():
                self._note([envelope], await self._run(CATALOGUE[envelope.name], [envelope]))
                await self._write_noted()
            return
        except Exception as refused:
            error = refused.__cause__ if isinstance(refused, RunFailed) and refused.__cause__ else refused
            if is_transient(error) or concurrent_duplicate(error):
                raise
        self.noted = []
        self._note([envelope], [dead_lettered(for_caller(error), for_operator(error))])
        try:
            async with self.conn.begin_nested():
                await self._write_noted()
        except Exception as unrecordable:
            if is_transient(unrecordable):
                raise
            log.error("the dead letter of %s could not be recorded: %r", envelope.command_id, unrecordable)
            [(row, _)] = self.noted
            self.recorded.rows[envelope.command_id] = SimpleNamespace(**row)  # answered, though not recorded
            self.noted = []

    def _claim_key(self, envelope: Envelope[Any]) -> Result | None:
        """The first command with an Idempotency-Key (per actor) takes it; another one is rejected."""
        if envelope.idempotency_key is None:
            return None
        first = self.keys.setdefault((envelope.idempotency_key, str(envelope.actor)), envelope.command_id)
        return None if first == envelope.command_id else KEY_REUSED_RESULT


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
    ) -> _Recorded:
        """One transaction for the group, which also marks the events relayed after the previous one.
        The token, read after COMMIT, is only needed by those who wait."""
        async with tracing.transaction(e.command_id for e in envelopes), self.engine.connect() as conn:
            async with conn.begin():
                recorded = await _Attempt(conn, suspects, careful, self.grants).apply(envelopes)
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

    async def _dead_letter_all(self, envelopes: Sequence[Envelope[Any]], caller: str, reason: str) -> _Recorded:
        """Nothing of the group can be applied: each command recorded dead_lettered on its own (unless
        another consumer applied it meanwhile: then that outcome is the answer)."""
        recorded = _Recorded({}, unmarked=True)
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


def _shares(group: list[_Request], recorded: _Recorded, *, marked: bool, unrelayed: bool) -> list[Applied]:
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
