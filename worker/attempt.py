"""One attempt at a group of batches, inside its transaction: read the inbox, collapse every copy of a
command id onto its first occurrence, cut the new commands into runs, apply them (isolating what
fails for good under savepoints), and write their inbox and outbox rows."""

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.headers import Actor
from shared.models import CommandStatus
from shared.settings import ServiceGrant
from worker import outbox, repository
from worker.catalogue import CATALOGUE, Command
from worker.envelope import Envelope
from worker.failures import concurrent_duplicate, for_caller, for_operator
from worker.handlers.result import Result, dead_lettered
from worker.inbox import KEY_REUSED_RESULT, inbox_row
from worker.outbox import OutboxRow
from worker.transient import is_transient

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """A run applied outside a savepoint failed for good: the next attempt isolates its commands."""

    def __init__(self, run: Sequence[Envelope[Any]], error: BaseException) -> None:
        super().__init__(f"{run[0].name} failed: {error!r}")
        self.command_ids = {envelope.command_id for envelope in run}


@dataclass
class Recorded:
    """What the group's transaction recorded: each command id's inbox row, events, dead-letter reasons."""

    rows: dict[uuid.UUID, Any]
    events: list[OutboxRow] = field(default_factory=list)
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)
    token: str | None = None
    unmarked: bool = False  # recorded outside the group's transaction (dead-lettered all): nothing marked


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


class Attempt:
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
        self.recorded = Recorded({})

    async def apply(self, envelopes: Sequence[Envelope[Any]]) -> Recorded:
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
