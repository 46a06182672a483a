"""Apply a batch of commands in one transaction with their inbox rows.

A batch commits in one transaction even when some of its commands fail for good: runs of several
commands, and commands that failed in an earlier attempt, are applied under a savepoint, and a
failing run is split until each failing command is dead-lettered alone (recorded in the same
transaction). A command that fails outside a savepoint aborts the attempt; the next one isolates
it. Transient failures (the database away) are retried with capped backoff.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import tracing
from shared.contracts.outcomes import Outcome, OutcomeCode
from shared.models import CommandStatus
from worker import outbox, repository
from worker.catalogue import CATALOGUE, Command
from worker.envelope import Envelope
from worker.failures import concurrent_duplicate, for_caller, for_operator
from worker.handlers.imports import import_progress
from worker.handlers.result import Result
from worker.outbox import OutboxRow
from worker.transient import is_transient

log = logging.getLogger(__name__)
KEY_REUSED = "this Idempotency-Key was already used for a different request"


class RunFailed(Exception):
    """A run applied outside a savepoint failed for good: the next attempt isolates its commands."""

    def __init__(self, run: Sequence[Envelope[Any]], error: BaseException) -> None:
        super().__init__(f"{run[0].name} failed: {error!r}")
        self.command_ids = {envelope.command_id for envelope in run}


@dataclass
class Applied:
    """What a committed batch produced: an outcome per command, and the events to relay."""

    outcomes: list[Outcome] = field(default_factory=list)
    events: list[OutboxRow] = field(default_factory=list)
    marked: bool = False  # the relayed events handed to apply() were marked published in it
    unrelayed: bool = False  # an attempt may have committed unseen: its events wait in the outbox
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)  # why each dead letter failed, for operators

    def extend(self, other: "Applied") -> None:
        self.outcomes += other.outcomes
        self.events += other.events
        self.marked = self.marked or other.marked
        self.unrelayed = self.unrelayed or other.unrelayed
        self.reasons |= other.reasons


def _outcome(command_id: uuid.UUID, name: str, row: Any) -> Outcome:
    return Outcome(
        command_id=command_id,
        name=name,
        status=CommandStatus(row.status),
        code=OutcomeCode(row.code),
        detail=row.detail,
        resource_id=row.resource_id,
        import_progress=import_progress(name, row.changes),
    )


def _inbox_row(envelope: Envelope[Any], result: Result) -> dict[str, Any]:
    return {
        "command_id": envelope.command_id,
        "name": envelope.name.value,
        "status": result.status.value,
        "code": result.code.value,
        "detail": result.detail,
        "resource_id": result.resource_id,
        "actor": str(envelope.actor),
        "fingerprint": envelope.fingerprint,
        # a refused reuse does not claim the key: the first command keeps it
        "idempotency_key": None if result.code == OutcomeCode.IDEMPOTENCY_KEY_REUSED else envelope.idempotency_key,
        "changes": result.changes or None,
        "received_at": envelope.received_at,
    }


def _replayed(envelope: Envelope[Any], prior: Any) -> Outcome:
    """A command seen before answers its first outcome, unless its id was reused for other work."""
    if envelope.fingerprint and prior.fingerprint and envelope.fingerprint != prior.fingerprint:
        return Outcome(
            command_id=envelope.command_id,
            name=envelope.name.value,
            status=CommandStatus.REJECTED,
            code=OutcomeCode.IDEMPOTENCY_KEY_REUSED,
            detail=KEY_REUSED,
        )
    return _outcome(envelope.command_id, prior.name, prior)


class _Batch:
    """One attempt at a batch, inside the caller's transaction."""

    def __init__(self, conn: AsyncConnection, suspects: set[uuid.UUID]) -> None:
        self.conn = conn
        self.suspects = suspects
        self.reasons: dict[uuid.UUID, str] = {}

    async def apply(self, envelopes: Sequence[Envelope[Any]]) -> Applied:
        conn = self.conn
        prior: dict[uuid.UUID, Any] = await repository.find_outcomes(conn, {e.command_id for e in envelopes})
        retried = {command_id for command_id, row in prior.items() if row.status == CommandStatus.DEAD_LETTERED}
        if retried:  # a dead letter replayed (or retried with its key) is applied anew, at its replay
            await repository.delete_outcomes(conn, retried)
            prior = {command_id: row for command_id, row in prior.items() if command_id not in retried}
        keys = await self._used_keys(envelopes, prior)
        new_rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        outcomes = []
        for run in _runs(envelopes, prior, self.suspects):
            first = run[0]
            if first.command_id in prior:  # seen before (or earlier in this batch): its first outcome
                outcomes.append(_replayed(first, prior[first.command_id]))
                continue
            command = CATALOGUE[first.name]
            results = await self._run(command, run, keys)
            for envelope, result in zip(run, results, strict=True):
                if result.reason is not None:
                    self.reasons[envelope.command_id] = result.reason
                    log.error("command %s (%s) dead-lettered: %s", envelope.command_id, envelope.name, result.reason)
                row = _inbox_row(envelope, result)
                new_rows.append(row)
                prior[envelope.command_id] = SimpleNamespace(**row)
                outcomes.append(_outcome(envelope.command_id, envelope.name.value, result))
                if (event := outbox.event_row(envelope, result, command.event)) is not None:
                    events.append(event)
        await repository.insert_outcomes(conn, new_rows)
        return Applied(outcomes, await outbox.write(conn, events), reasons=self.reasons)

    async def _used_keys(
        self, envelopes: Sequence[Envelope[Any]], prior: dict[uuid.UUID, Any]
    ) -> dict[tuple[uuid.UUID, str], uuid.UUID]:
        """(Idempotency-Key id, actor) -> the command that used it first, for the keyed new commands."""
        keyed = [e for e in envelopes if e.idempotency_key is not None and e.command_id not in prior]
        if not keyed:
            return {}
        return await repository.find_keys(self.conn, {e.idempotency_key for e in keyed if e.idempotency_key})

    async def _run(
        self, command: Command[Any], run: list[Envelope[Any]], keys: dict[tuple[uuid.UUID, str], uuid.UUID]
    ) -> list[Result]:
        """Results of a run, in order; a key already used by another command rejects that command."""
        reused = [_claim_key(envelope, keys) for envelope in run]
        if any(reused):  # runs hold new commands of one name: apply the others, answer these
            return await self._mixed(command, run, reused)
        if len(run) > 1 or run[0].command_id in self.suspects:
            return await self._isolated(command, run)
        try:
            return await command.handle(self.conn, run)
        except Exception as error:
            if is_transient(error) or concurrent_duplicate(error):
                raise
            raise RunFailed(run, error) from error

    async def _mixed(
        self, command: Command[Any], run: list[Envelope[Any]], reused: list[Result | None]
    ) -> list[Result]:
        fresh = [envelope for envelope, refused in zip(run, reused, strict=True) if refused is None]
        applied = iter(await self._isolated(command, fresh) if fresh else [])
        return [refused or next(applied) for refused in reused]

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
                return [Result(CommandStatus.DEAD_LETTERED, OutcomeCode.DEAD_LETTERED, detail=for_caller(error),
                               reason=for_operator(error))]  # fmt: skip
            if command.isolate is not None:
                return await command.isolate(self.conn, run)
            middle = len(run) // 2
            return await self._isolated(command, run[:middle]) + await self._isolated(command, run[middle:])


def _claim_key(envelope: Envelope[Any], keys: dict[tuple[uuid.UUID, str], uuid.UUID]) -> Result | None:
    """The first command with an Idempotency-Key (per actor) takes it; another one is rejected."""
    if envelope.idempotency_key is None:
        return None
    first = keys.setdefault((envelope.idempotency_key, str(envelope.actor)), envelope.command_id)
    if first == envelope.command_id:
        return None
    return Result(CommandStatus.REJECTED, OutcomeCode.IDEMPOTENCY_KEY_REUSED, detail=KEY_REUSED)


def _runs(
    envelopes: Sequence[Envelope[Any]], prior: dict[uuid.UUID, Any], suspects: set[uuid.UUID]
) -> Iterator[list[Envelope[Any]]]:
    """Split a batch, in order, into runs the handlers take at once: consecutive new commands of one
    batching name (item.create: one multi-row INSERT), else one command each."""
    run: list[Envelope[Any]] = []
    in_run: set[uuid.UUID] = set()
    for envelope in envelopes:
        groupable = CATALOGUE[envelope.name].batches and envelope.command_id not in prior
        if run and (not groupable or envelope.name != run[0].name or envelope.command_id in in_run):
            yield run
            run, in_run = [], set()
        if groupable:
            run.append(envelope)
            in_run.add(envelope.command_id)
        else:
            yield [envelope]
    if run:
        yield run


async def apply_once(
    engine: AsyncEngine,
    envelopes: Sequence[Envelope[Any]],
    relayed: Sequence[int] = (),
    suspects: set[uuid.UUID] | None = None,
) -> Applied:
    """One transaction for the whole batch, which also marks the events relayed after the previous
    one. The token, read after COMMIT, is only needed by those who wait."""
    async with tracing.transaction(e.command_id for e in envelopes), engine.connect() as conn:  # links to each
        async with conn.begin():
            applied = await _Batch(conn, suspects or set()).apply(envelopes)
            await outbox.mark_published(conn, relayed)
        applied.marked = bool(relayed)
        if any(envelope.reply_to for envelope in envelopes):
            token = await _token(engine, conn)
            applied.outcomes = [outcome.model_copy(update={"token": token}) for outcome in applied.outcomes]
    return applied


async def _token(engine: AsyncEngine, conn: AsyncConnection) -> str | None:
    """The primary's WAL position after the commit. Any later reading is at or past the commit
    record, so a lost connection is no reason to apply again: read it on another, or give none."""
    try:
        return await repository.wal_position(conn)
    except Exception as error:
        log.warning("WAL position not read after commit (%r); trying another connection", error)
    try:
        async with engine.connect() as fresh:
            return await repository.wal_position(fresh)
    except Exception:
        return None


class Applier:
    """Retries transient failures with capped backoff; isolates commands that fail for good."""

    def __init__(self, engine: AsyncEngine, retry_limit_s: float = 600.0) -> None:
        self.engine = engine
        self.retry_limit_s = retry_limit_s

    async def apply(self, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int] = ()) -> Applied:
        """Outcomes in order; a command that cannot be applied comes back as dead_lettered.

        `relayed`: outbox ids published since the last commit, marked in the same transaction.
        """
        started, delay = time.monotonic(), 0.05
        suspects: set[uuid.UUID] = set()
        unrelayed = False
        while True:
            try:
                applied = await apply_once(self.engine, envelopes, relayed, suspects)
                applied.unrelayed = unrelayed
                return applied
            except RunFailed as failed:
                suspects |= failed.command_ids  # isolated in the next attempt
            except Exception as error:
                if concurrent_duplicate(error):  # another consumer committed one of these: answer its outcome
                    unrelayed = True
                    continue
                if not is_transient(error):  # not one command's fault (the inbox or outbox refused)
                    return await self._dead_letter_all(envelopes, error)
                unrelayed = True  # the COMMIT may have happened without its acknowledgement reaching us
                if time.monotonic() - started > self.retry_limit_s:
                    return await self._dead_letter_all(envelopes, error, gave_up=True)
                log.warning("database unavailable (%s); retrying in %.2fs", type(error).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter_all(
        self, envelopes: Sequence[Envelope[Any]], error: BaseException, *, gave_up: bool = False
    ) -> Applied:
        if gave_up:
            caller = f"the database was unavailable for over {self.retry_limit_s:.0f} s; it may be replayed"
        else:
            caller = for_caller(error)
        reason = for_operator(error)
        outcomes = [await self.dead_letter(envelope, caller, reason) for envelope in envelopes]
        dead = {o.command_id: reason for o in outcomes if o.status == CommandStatus.DEAD_LETTERED}
        return Applied(outcomes, unrelayed=True, reasons=dead)

    async def dead_letter(self, envelope: Envelope[Any], detail: str, reason: str) -> Outcome:
        """Record (best effort, on its own) that this command could not be applied, unless another
        consumer applied it meanwhile: then that outcome is the answer."""
        result = Result(CommandStatus.DEAD_LETTERED, OutcomeCode.DEAD_LETTERED, detail=detail)
        log.error("command %s (%s) dead-lettered: %s", envelope.command_id, envelope.name, reason)
        return await self.record_alone(_inbox_row(envelope, result))

    async def record_alone(self, row: dict[str, Any]) -> Outcome:
        """Record an outcome in a transaction of its own; an outcome recorded before wins (unless it
        was a dead letter too)."""
        try:
            async with self.engine.begin() as conn:
                existing = await repository.find_outcomes(conn, [row["command_id"]])
                if row["command_id"] in existing:
                    prior = existing[row["command_id"]]
                    if prior.status != CommandStatus.DEAD_LETTERED:
                        return _outcome(row["command_id"], prior.name, prior)
                else:
                    await repository.insert_outcomes(conn, [row])
        except Exception:
            log.exception("could not record the outcome of %s", row["command_id"])
        return _outcome(row["command_id"], row["name"], SimpleNamespace(**row))


def poison_row(command_id: uuid.UUID, name: str, actor: str, reason: str) -> dict[str, Any]:
    """The inbox row of a message that can never be applied: dead-lettered, with the reason."""
    return {
        "command_id": command_id,
        "name": name,
        "status": CommandStatus.DEAD_LETTERED.value,
        "code": OutcomeCode.DEAD_LETTERED.value,
        "detail": reason[:1000],
        "resource_id": None,
        "actor": actor[:80],
        "fingerprint": None,
        "idempotency_key": None,
        "changes": None,
        "received_at": datetime.now(UTC),
    }
