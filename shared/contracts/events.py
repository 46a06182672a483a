"""Events the worker emits after commit on the events exchange, so other services can follow.

Each event is one envelope (`Event`) whose `data` has a model per event name: what the command
changed, never a secret. `data` of `user.updated` and `item.updated` holds only the fields the
command set (a field absent was not changed; `description: null` was set to null). `item.imported`
announces the items one import chunk created, each with the fields of `item.created` and its id.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.fields import Description, Email, FullName, Id, Status, Title

EVENTS_EXCHANGE_NAME = "opengovfood.events"


class EventName(StrEnum):
    """Routing keys on the events exchange."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    ITEM_CREATED = "item.created"
    ITEM_UPDATED = "item.updated"
    ITEM_DELETED = "item.deleted"
    ITEM_IMPORTED = "item.imported"


class EventData(BaseModel):
    """Base of every event's `data`: exactly these fields, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UserCreated(EventData):
    email: Email
    full_name: FullName
    hashed_password: Literal["<changed>"] = Field(description="always `<changed>`: the hash never leaves the worker")


class UserUpdated(EventData):
    """Only the fields the command changed."""

    email: Email | None = None
    full_name: FullName | None = None
    is_active: bool | None = None
    hashed_password: Literal["<changed>"] | None = Field(None, description="present when the password changed")


class Deleted(EventData):
    """Nothing more than the event's resource_id."""


class ItemCreated(EventData):
    owner_id: Id
    title: Title
    description: Description | None
    status: Status


class ItemUpdated(EventData):
    """Only the fields the command changed (`description: null`: set to null)."""

    title: Title | None = None
    description: Description | None = None
    status: Status | None = None


class ImportedItem(ItemCreated):
    """One item an import created: the fields of `item.created`, and its id."""

    id: Id


class ItemsImported(EventData):
    """The items one applied chunk of an import created, in row order."""

    import_id: uuid.UUID
    seq: int = Field(ge=0, description="the chunk")
    items: list[ImportedItem] = Field(min_length=1)


DataT = TypeVar("DataT", bound=EventData)


class Event(BaseModel, Generic[DataT]):
    """One fact, published at least once: deduplicate by event_id (derived from the command id)."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    event_id: uuid.UUID
    command_id: uuid.UUID
    name: EventName
    resource_id: int = Field(description="the user or item; for item.imported, the owner")
    occurred_at: datetime
    data: DataT
    request_id: str | None = None  # the HTTP request that caused it, for following it in the logs


class UserCreatedEvent(Event[UserCreated]):
    name: Literal[EventName.USER_CREATED]


class UserUpdatedEvent(Event[UserUpdated]):
    name: Literal[EventName.USER_UPDATED]


class UserDeletedEvent(Event[Deleted]):
    name: Literal[EventName.USER_DELETED]


class ItemCreatedEvent(Event[ItemCreated]):
    name: Literal[EventName.ITEM_CREATED]


class ItemUpdatedEvent(Event[ItemUpdated]):
    name: Literal[EventName.ITEM_UPDATED]


class ItemDeletedEvent(Event[Deleted]):
    name: Literal[EventName.ITEM_DELETED]


class ItemImportedEvent(Event[ItemsImported]):
    name: Literal[EventName.ITEM_IMPORTED]


EVENTS: dict[EventName, type[Event[Any]]] = {
    EventName.USER_CREATED: UserCreatedEvent,
    EventName.USER_UPDATED: UserUpdatedEvent,
    EventName.USER_DELETED: UserDeletedEvent,
    EventName.ITEM_CREATED: ItemCreatedEvent,
    EventName.ITEM_UPDATED: ItemUpdatedEvent,
    EventName.ITEM_DELETED: ItemDeletedEvent,
    EventName.ITEM_IMPORTED: ItemImportedEvent,
}
