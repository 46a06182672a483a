"""Earlier versions of the command bodies, and how a body of one is upcast to the current version.

Policy: the worker accepts the current `x-schema-version` and the one before it; anything else is
dead-lettered with the reason. Version 2 (current) added, to version 1:
- `item.update`, `item.delete`: optional `if_match` (apply only if the item's ETag is still this one);
- `user.update`: optional `is_active` (honoured only from a service granted deactivation).
A version-1 body is validated against its own schema (so it may not carry those fields) and upcast.
Routing keys not listed here have the same body in both versions.
"""

from shared.contracts.base import CommandBody
from shared.contracts.commands import COMMAND_BODIES, SCHEMA_VERSION, CommandName
from shared.contracts.fields import Description, Email, FullName, Id, PasswordHash, Status, Title

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


V1_BODIES: dict[CommandName, type[CommandBody]] = {
    CommandName.USER_UPDATE: UpdateUserV1,
    CommandName.ITEM_UPDATE: UpdateItemV1,
    CommandName.ITEM_DELETE: DeleteItemV1,
}


def body_schema(name: CommandName, version: int) -> type[CommandBody]:
    """The body model of a command in a given accepted version."""
    if version == PREVIOUS_SCHEMA_VERSION:
        return V1_BODIES.get(name, COMMAND_BODIES[name])
    return COMMAND_BODIES[name]


def upcast(name: CommandName, body: CommandBody) -> CommandBody:
    """A body of the previous version as the current one; only the fields it set stay set."""
    current = COMMAND_BODIES[name]
    if isinstance(body, current):
        return body
    return current.model_validate(body.model_dump(exclude_unset=True))
