"""Earlier versions of the command bodies, and how a body of one is upcast to the current version.

Policy: the worker accepts the current `x-schema-version` and the one before it; anything else is
dead-lettered with the reason. Version 2 (current) added, to version 1:
- `item.update`, `item.delete`: optional `if_match` (apply only if the item's ETag is still this one);
- `user.update`: optional `is_active` (honoured only from a service granted deactivation) and
  `if_password_hash` (apply only while the stored hash is still that one).
A version-1 body is validated against its own schema (so it may not carry those fields) and upcast.
BODIES lists each command's body per accepted version; other commands have one body for both.
"""

from shared.contracts import commands
from shared.contracts.base import CommandBody
from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.fields import Description, Email, FullName, Id, PasswordHash, Status, Title
from shared.contracts.imports import ImportChunk

PREVIOUS_SCHEMA_VERSION = SCHEMA_VERSION - 1
ACCEPTED_SCHEMA_VERSIONS = frozenset({PREVIOUS_SCHEMA_VERSION, SCHEMA_VERSION})


class UpdateUserV1(CommandBody):
    user_id: Id
    email: Email | None = None
    full_name: FullName | None = None
    hashed_password: PasswordHash | None = None


class UpdateItemV1(CommandBody):
    item_id: Id
    title: Title | None = None
    description: Description | None = None
    status: Status | None = None


class DeleteItemV1(CommandBody):
    item_id: Id


def versions(current: type[CommandBody], previous: type[CommandBody] | None = None) -> dict[int, type[CommandBody]]:
    """The accepted versions' bodies: the previous one differs only where the policy says so."""
    return {SCHEMA_VERSION: current, PREVIOUS_SCHEMA_VERSION: previous or current}


# Every command's body per accepted schema version: what the worker validates, what asyncapi.py documents.
BODIES: dict[CommandName, dict[int, type[CommandBody]]] = {
    CommandName.USER_CREATE: versions(commands.CreateUser),
    CommandName.USER_UPDATE: versions(commands.UpdateUser, UpdateUserV1),
    CommandName.USER_DELETE: versions(commands.DeleteUser),
    CommandName.ITEM_CREATE: versions(commands.CreateItem),
    CommandName.ITEM_UPDATE: versions(commands.UpdateItem, UpdateItemV1),
    CommandName.ITEM_DELETE: versions(commands.DeleteItem, DeleteItemV1),
    CommandName.ITEM_IMPORT: versions(ImportChunk),
}
