"""Turn a delivered message into a validated command, or say why it cannot be one."""

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.fields import readable
from shared.contracts.headers import (
    HEADER_ACTOR,
    HEADER_FINGERPRINT,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_REQUEST_ID,
    HEADER_SCHEMA_VERSION,
    Actor,
)
from shared.contracts.imports import MAX_COMMAND_BYTES
from shared.contracts.versions import ACCEPTED_SCHEMA_VERSIONS
from shared.models.command import ACTOR_LENGTH
from shared.settings import ServiceGrant
from worker.catalogue import CATALOGUE
from worker.envelope import Envelope, PoisonMessage


def _request_id(headers: dict[str, Any]) -> str | None:
    value = headers.get(HEADER_REQUEST_ID)
    return str(value)[:64] if value else None


def _command_id(message_id: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(message_id))
    except ValueError:
        raise PoisonMessage(f"message_id must be a UUID (the command id), got {message_id!r}") from None


def _idempotency_key(headers: dict[str, Any]) -> uuid.UUID | None:
    value = headers.get(HEADER_IDEMPOTENCY_KEY)
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise PoisonMessage(f"header {HEADER_IDEMPOTENCY_KEY} must be a UUID, got {str(value)[:80]!r}") from None


def _actor(headers: dict[str, Any], bus_user: str | None, gateway_bus_user: str) -> Actor:
    if bus_user != gateway_bus_user:
        service = Actor("service", service=bus_user or "unknown")
        if len(str(service)) > ACTOR_LENGTH:  # its outcome could not name it: the inbox's actor column
            raise PoisonMessage(f"the publisher's bus user name is longer than {ACTOR_LENGTH - 8} characters")
        return service
    try:
        return Actor.parse(str(headers.get(HEADER_ACTOR, "")))
    except ValueError as error:
        raise PoisonMessage(f"header {HEADER_ACTOR}: {error}") from None


def _name(routing_key: str) -> CommandName:
    try:
        return CommandName(routing_key)
    except ValueError:
        raise PoisonMessage(f"unknown command {routing_key!r}") from None


def _check_version(headers: dict[str, Any]) -> int:
    """The current or the previous version (a missing header means the current one)."""
    version = str(headers.get(HEADER_SCHEMA_VERSION, SCHEMA_VERSION))
    if not version.isdigit() or int(version) not in ACCEPTED_SCHEMA_VERSIONS:
        accepted = " or ".join(str(v) for v in sorted(ACCEPTED_SCHEMA_VERSIONS))
        raise PoisonMessage(f"unsupported {HEADER_SCHEMA_VERSION} {version!r} (accepted: {accepted})")
    return int(version)


def decode(
    *,
    routing_key: str,
    message_id: str | None,
    headers: dict[str, Any],
    body: bytes,
    bus_user: str | None,
    reply_to: str | None,
    gateway_bus_user: str,
    grants: Mapping[str, ServiceGrant] | None = None,
    partition: int = 0,
    priority: int | None = None,
) -> Envelope[Any]:
    """Validate headers and body; raise PoisonMessage with a readable reason.

    Only `gateway_bus_user` may assert a user actor; any other publisher acts as a service, within
    its grant in `grants` (SERVICE_GRANTS), which travels with the envelope to the handlers.
    """
    command_id = _command_id(message_id)
    actor: Actor | None = None
    try:
        if len(body) > MAX_COMMAND_BYTES:
            raise PoisonMessage(f"the body is larger than {MAX_COMMAND_BYTES} bytes")
        if priority:
            raise PoisonMessage(
                "the priority property is not allowed: a command could overtake its owner's earlier ones"
            )
        actor = _actor(headers, bus_user, gateway_bus_user)
        name = _name(routing_key)
        version = _check_version(headers)
        try:
            command_body = CATALOGUE[name].read(version, body)
        except ValidationError as error:
            raise PoisonMessage(f"invalid {name} body (schema version {version}): {_reasons(error)}") from None
        return Envelope(
            command_id=command_id,
            name=name,
            body=command_body,
            actor=actor,
            fingerprint=str(headers.get(HEADER_FINGERPRINT) or "")[:64] or None,
            reply_to=reply_to or None,
            received_at=datetime.now(UTC),
            partition=partition,
            request_id=_request_id(headers),
            grant=(grants or {}).get(actor.service or "") if actor.kind == "service" else None,
            idempotency_key=_idempotency_key(headers),
        )
    except PoisonMessage as poison:
        raise PoisonMessage(poison.reason, command_id, routing_key[:32], actor) from None


def _reasons(error: ValidationError) -> str:
    """Each invalid field and why, without the values sent (they may be anybody's data)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {readable(e)}" for e in error.errors(include_input=False)
    )[:1000]
