"""The commands: the public wire contract on the bus (one pydantic model per routing key)."""

from enum import StrEnum

from shared.contracts.base import CommandBody as CommandBody  # re-exported: every body derives from it
from shared.contracts.fields import Description, Email, ETag, FullName, Id, PasswordHash, Status, Title

SCHEMA_VERSION = 2  # the previous one (1) is still accepted: see shared/contracts/versions.py


class CommandName(StrEnum):
    """Routing keys on the commands exchange."""

    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_DELETE = "user.delete"
    ITEM_CREATE = "item.create"
    ITEM_UPDATE = "item.update"
    ITEM_DELETE = "item.delete"
    ITEM_IMPORT = "item.import"


class CreateUser(CommandBody):
    email: Email
    hashed_password: PasswordHash
    full_name: FullName


class UpdateUser(CommandBody):
    """Only the fields present are changed (exclude_unset end to end)."""

    user_id: Id
    email: Email | None = None
    full_name: FullName | None = None
    hashed_password: PasswordHash | None = None
    is_active: bool | None = None  # honoured only from a service granted may_deactivate
    if_password_hash: PasswordHash | None = None  # apply only if the stored hash is still this one


class DeleteUser(CommandBody):
    user_id: Id


class CreateItem(CommandBody):
    owner_id: Id
    title: Title
    description: Description | None = None
    status: Status = Status.PENDING


class UpdateItem(CommandBody):
    """Only the fields present are changed; description may be set to null."""

    item_id: Id
    title: Title | None = None
    description: Description | None = None
    status: Status | None = None
    if_match: ETag | None = None  # apply only if the item's ETag is still this one


class DeleteItem(CommandBody):
    item_id: Id
    if_match: ETag | None = None
