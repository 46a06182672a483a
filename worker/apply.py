"""Apply a batch of commands in one transaction with their inbox rows; retry or isolate failures."""

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contracts.outcomes import Outcome, OutcomeCode
from shared.models import CommandStatus
from worker import outbox, repository
from worker.catalogue import CATALOGUE
from worker.envelope import Envelope
from worker.handlers.result import Result
from worker.outbox import OutboxRow
from worker.transient import is_transient

log = logging.getLogger(__name__)


class GaveUp(Exception):
    """A transient failure outlived the retry limit."""


def _outcome(command_id: uuid.UUID, name: str, row: Any) -> Outcome:
    return Outcome(
        command_id=command_id,
        name=name,
        status=CommandStatus(row.status),
        code=OutcomeCode(row.code),
        detail=row.detail,
        resource_id=row.resource_id,
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
        "changes": result.changes or None,
        "received_at": envelope.received_at,
    }


def _replayed(envelope: Envelope[Any], prior: Any) -> Outcome:
    """A command seen before answers its first outcome, unless its key was reused for other work."""
    if envelope.fingerprint and prior.fingerprint and envelope.fingerprint != prior.fingerprint:
        return Outcome(
            command_id=envelope.command_id,
            name=envelope.name.value,
            status=CommandStatus.REJECTED,
            code=OutcomeCode.IDEMPOTENCY_KEY_REUSED,
            detail="this idempotency key was already used for a different request",
        )
    return _outcome(envelope.command_id, prior.name, prior)


@dataclass
class Applied:
    """What a committed batch produced: an outcome per command, and the events to relay."""

    outcomes: list[Outcome] = field(default_factory=list)
    events: list[OutboxRow] = field(default_factory=list)
    marked: bool = False  # the relayed events handed to apply() were marked published in it

    def extend(self, other: "Applied") -> None:
        self.outcomes += other.outcomes
        self.events += other.events
        self.marked = self.marked or other.marked


async def _apply_in(conn: AsyncConnection, envelopes: Sequence[Envelope[Any]]) -> Applied:
    prior: dict[uuid.UUID, Any] = dict(await repository.find_outcomes(conn, {e.command_id for e in envelopes}))
    new_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    outcomes = []
    for run in _runs(envelopes, prior):
        if run[0].command_id in prior:  # seen before (or earlier in this batch): its first outcome
            outcomes.append(_replayed(run[0], prior[run[0].command_id]))
            continue
        command = CATALOGUE[run[0].name]
        results = await command.handle(conn, run)
        for envelope, result in zip(run, results, strict=True):
            row = _inbox_row(envelope, result)
            new_rows.append(row)
            prior[envelope.command_id] = SimpleNamespace(**row)
            outcomes.append(_outcome(envelope.command_id, envelope.name.value, result))
            if (event := outbox.event_row(envelope, result, command.event)) is not None:
                events.append(event)
    await repository.insert_outcomes(conn, new_rows)
    return Applied(outcomes, await outbox.write(conn, events))


def _runs(envelopes: Sequence[Envelope[Any]], prior: dict[uuid.UUID, Any]) -> Iterator[list[Envelope[Any]]]:
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


async def apply_once(engine: AsyncEngine, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int] = ()) -> Applied:
    """One transaction for the whole batch, which also marks the events relayed after the previous
    one. The token, read after COMMIT on the same connection, is only needed by those who wait."""
    async with engine.connect() as conn:
        async with conn.begin():
            applied = await _apply_in(conn, envelopes)
            await outbox.mark_published(conn, relayed)
        applied.marked = bool(relayed)
        if any(envelope.reply_to for envelope in envelopes):
            token = await repository.wal_position(conn)
            applied.outcomes = [outcome.model_copy(update={"token": token}) for outcome in applied.outcomes]
    return applied


class Applier:
    """Retries transient failures with capped backoff; isolates a command that fails for good."""

    def __init__(self, engine: AsyncEngine, retry_limit_s: float = 600.0) -> None:
        self.engine = engine
        self.retry_limit_s = retry_limit_s

    async def apply_with_retry(self, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int] = ()) -> Applied:
        started, delay = time.monotonic(), 0.05
        while True:
            try:
                return await apply_once(self.engine, envelopes, relayed)
            except Exception as error:
                if not is_transient(error):
                    raise
                if time.monotonic() - started > self.retry_limit_s:
                    raise GaveUp(f"transient failure for {self.retry_limit_s:.0f}s: {error}") from error
                log.warning("database unavailable (%s); retrying in %.2fs", type(error).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def apply(self, envelopes: Sequence[Envelope[Any]], relayed: Sequence[int] = ()) -> Applied:
        """Outcomes in order; a command that cannot be applied comes back as dead_lettered.

        `relayed`: outbox ids published since the last commit, marked in the same transaction.
        """
        try:
            return await self.apply_with_retry(envelopes, relayed)
        except GaveUp as error:
            return Applied([await self.dead_letter(envelope, error) for envelope in envelopes])
        except Exception as error:
            if len(envelopes) == 1:
                return Applied([await self.dead_letter(envelopes[0], error)])
            log.warning("batch of %d failed (%r); applying one by one", len(envelopes), error)
        applied = Applied()
        for envelope in envelopes:
            applied.extend(await self.apply([envelope], () if applied.marked else relayed))
        return applied

    async def dead_letter(self, envelope: Envelope[Any], error: BaseException) -> Outcome:
        """Record that this command could not be applied, so it never stays pending for ever."""
        log.error("command %s (%s) dead-lettered: %r", envelope.command_id, envelope.name, error)
        result = Result(CommandStatus.DEAD_LETTERED, OutcomeCode.DEAD_LETTERED, detail=repr(error)[:1000])
        row = _inbox_row(envelope, result)
        try:
            async with self.engine.begin() as conn:
                if envelope.command_id not in await repository.find_outcomes(conn, [envelope.command_id]):
                    await repository.insert_outcomes(conn, [row])
        except Exception:
            log.exception("could not record the dead-lettered outcome of %s", envelope.command_id)
        return _outcome(envelope.command_id, envelope.name.value, result)
