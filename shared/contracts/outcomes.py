"""What the worker answers for each command: stored in the inbox, sent to the reply queue."""

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.models.command import CommandStatus


class OutcomeCode(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    EMAIL_TAKEN = "email_taken"
    NOT_FOUND = "not_found"
    OWNER_INACTIVE = "owner_inactive"
    FORBIDDEN = "forbidden"
    PRECONDITION_FAILED = "precondition_failed"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    DEAD_LETTERED = "dead_lettered"


class Outcome(BaseModel):
    """The result of one command; token is the primary's WAL position after the commit."""

    model_config = ConfigDict(frozen=True)

    command_id: uuid.UUID
    name: str
    status: CommandStatus
    code: OutcomeCode
    detail: str | None = None
    resource_id: int | None = None
    token: str | None = None
