"""Earlier versions of the command bodies, and how a body of one is upcast to the current version.

Policy: the worker accepts the current `x-schema-version` and the one before it; anything else is
dead-lettered with the reason. Version 2 (current) added, to version 1:
- `item.update`, `item.delete`: optional `if_match` (apply only if the item's ETag is still this one);
- `user.update`: optional `is_active` (honoured only from a service granted deactivation) and
  `if_password_hash` (apply only while the stored hash is still that one).
A version-1 body is validated against its own schema (so it may not carry those fields) and upcast
(worker/catalogue.py lists each command's body per version). Other commands have one body for both.
"""

from shared.contracts.base import CommandBody
from shared.contracts.commands import SCHEMA_VERSION
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
