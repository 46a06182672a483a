"""What a handler decides about one command."""

from dataclasses import dataclass, field
from typing import Any

from shared.contracts.outcomes import OutcomeCode
from shared.models import CommandStatus


@dataclass(frozen=True)
class Announcement:
    """What an applied command's event says, when it is not its resource and changes (item.imported)."""

    resource_id: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Result:
    status: CommandStatus
    code: OutcomeCode
    resource_id: int | None = None
    detail: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    announce: Announcement | None = None  # None: the event (if any) is the resource and its changes
    reason: str | None = None  # a dead letter's whole error, for operators (detail has the caller's words)


def applied(code: OutcomeCode, resource_id: int, changes: dict[str, Any]) -> Result:
    return Result(CommandStatus.APPLIED, code, resource_id, changes=changes)


def rejected(code: OutcomeCode, detail: str, resource_id: int | None = None) -> Result:
    return Result(CommandStatus.REJECTED, code, resource_id, detail=detail)


def audit_changes(values: dict[str, Any]) -> dict[str, Any]:
    """What changed, for the audit log: secrets are named, never stored."""
    return {key: ("<changed>" if key == "hashed_password" else value) for key, value in values.items()}


def dead_lettered(detail: str, reason: str | None = None) -> Result:
    """It cannot be applied: `detail` for the caller, `reason` (the whole error) for operators."""
    return Result(CommandStatus.DEAD_LETTERED, OutcomeCode.DEAD_LETTERED, detail=detail, reason=reason)
