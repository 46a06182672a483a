"""Events the worker emits after commit on the events exchange, so other services can follow."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

EVENTS_EXCHANGE_NAME = "opengovfood.events"


class EventName(StrEnum):
    """Routing keys on the events exchange."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    ITEM_CREATED = "item.created"
    ITEM_UPDATED = "item.updated"
    ITEM_DELETED = "item.deleted"


class Event(BaseModel):
    """One fact, published at least once: deduplicate by event_id (derived from the command id)."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    command_id: uuid.UUID
    name: EventName
    resource_id: int
    occurred_at: datetime
    data: dict[str, Any]  # what changed (secrets never included)
    request_id: str | None = None  # the HTTP request that caused it, for following it in the logs
