"""What the worker answers for each command: stored in the inbox, sent to the reply queue."""

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.models.command import CommandStatus
from shared.models.import_job import ImportState


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


class RowError(BaseModel):
    """One rejected row of an import: its number in the source, and why."""

    model_config = ConfigDict(frozen=True)

    row: int
    error: str


class ImportProgress(BaseModel):
    """What an applied `item.import` chunk did, and where its import stands after it."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    import_id: uuid.UUID
    seq: int = Field(ge=0, description="the chunk")
    applied: int = Field(ge=0, description="rows of this chunk created")
    rejected: int = Field(ge=0, description="rows of this chunk rejected")
    errors: list[RowError] = Field([], description="this chunk's rejected rows (the first 100), in row order")
    duplicate: bool = Field(False, description="this chunk was applied before (republished): it did nothing again")
    chunks_done: int = Field(ge=0, description="chunks of the import applied so far")
    total_chunks: int = Field(ge=1)
    state: ImportState = Field(description="`completed` once every chunk is applied: this outcome ends the import")
    import_applied: int = Field(ge=0, description="rows of the whole import created so far")
    import_rejected: int = Field(ge=0, description="rows of the whole import rejected so far")


class Outcome(BaseModel):
    """The result of one command; token is the primary's WAL position after the commit."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    command_id: uuid.UUID
    name: str = Field(description="the routing key it was published with (a dead-lettered one may be unknown)")
    status: CommandStatus
    code: OutcomeCode
    detail: str | None = None
    resource_id: int | None = None
    token: str | None = None
    import_progress: ImportProgress | None = Field(None, description="`item.import` chunks only")
