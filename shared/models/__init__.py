"""All tables; importing this package registers them on Base.metadata."""

from shared.models.base import Base
from shared.models.command import Command, CommandStatus
from shared.models.import_job import ImportJob, ImportJobChunk, ImportState
from shared.models.item import Item, ItemStatus
from shared.models.outbox import OutboxEvent
from shared.models.user import User

__all__ = [
    "Base",
    "Command",
    "CommandStatus",
    "ImportJob",
    "ImportJobChunk",
    "ImportState",
    "Item",
    "ItemStatus",
    "OutboxEvent",
    "User",
]
