"""A command message as the public contract describes it (docs/publishing.md): the gateway, the importer
and the CLI build theirs with `command_message`, and another service builds the same by hand."""

import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika

from shared.contracts.commands import SCHEMA_VERSION
from shared.contracts.headers import HEADER_ACTOR, HEADER_OWNER, HEADER_SCHEMA_VERSION


def command_message(
    body: bytes,
    *,
    command_id: uuid.UUID,
    owner_key: str,
    user_id: str,
    actor: str | None = None,
    reply_to: str | None = None,
    headers: dict[str, Any] | None = None,
) -> aio_pika.Message:
    """A command as the contract says: persistent JSON, its id as message_id, the owner as partition key.

    `actor` (`user:<id>` or `anonymous`) is honoured by the worker only from the gateway's bus user.
    """
    all_headers: dict[str, Any] = {HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION), HEADER_OWNER: owner_key}
    if actor is not None:
        all_headers[HEADER_ACTOR] = actor
    return aio_pika.Message(
        body,
        message_id=str(command_id),
        correlation_id=str(command_id),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=user_id,
        reply_to=reply_to,
        timestamp=datetime.now(UTC),
        headers=all_headers | (headers or {}),
    )
