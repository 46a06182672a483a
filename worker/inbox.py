"""The inbox: one row per command id, its outcome; and the answer each delivery of that id gets."""

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.contracts.outcomes import Outcome, OutcomeCode
from shared.models import CommandStatus
from shared.models.command import ACTOR_LENGTH
from worker.envelope import Envelope
from worker.handlers.imports import import_progress
from worker.handlers.result import Result, rejected

KEY_REUSED = "this Idempotency-Key was already used for a different request"
KEY_REUSED_RESULT = rejected(OutcomeCode.IDEMPOTENCY_KEY_REUSED, KEY_REUSED)


def inbox_row(envelope: Envelope[Any], result: Result) -> dict[str, Any]:
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


def poison_row(command_id: uuid.UUID, name: str, actor: str, reason: str) -> dict[str, Any]:
    """The inbox row of a message that can never be applied: dead-lettered, with the reason."""
    return {
        "command_id": command_id,
        "name": name,
        "status": CommandStatus.DEAD_LETTERED.value,
        "code": OutcomeCode.DEAD_LETTERED.value,
        "detail": reason[:1000],
        "resource_id": None,
        "actor": actor[:ACTOR_LENGTH],
        "fingerprint": None,
        "idempotency_key": None,
        "changes": None,
        "received_at": datetime.now(UTC),
    }


def outcome_of(command_id: uuid.UUID, row: Any, token: str | None = None) -> Outcome:
    """The outcome an inbox row records."""
    return Outcome(
        command_id=command_id,
        name=row.name,
        status=CommandStatus(row.status),
        code=OutcomeCode(row.code),
        detail=row.detail,
        resource_id=row.resource_id,
        import_progress=import_progress(row.name, row.changes),
        token=token,
    )


def answer(envelope: Envelope[Any], row: Any, token: str | None = None) -> Outcome:
    """What a delivery of a command id is told: the outcome recorded for that id, unless the delivery
    carries another body than the one recorded (the id reused for other work): then a refusal."""
    if envelope.fingerprint and row.fingerprint and envelope.fingerprint != row.fingerprint:
        return Outcome(
            command_id=envelope.command_id,
            name=envelope.name.value,
            status=CommandStatus.REJECTED,
            code=OutcomeCode.IDEMPOTENCY_KEY_REUSED,
            detail=KEY_REUSED,
            token=token,
        )
    return outcome_of(envelope.command_id, row, token)
