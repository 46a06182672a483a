"""Turn a delivered message into a validated command, or say why it cannot be one."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.contracts.commands import SCHEMA_VERSION, CommandBody, CommandName
from shared.contracts.headers import Actor
from shared.contracts.versions import ACCEPTED_SCHEMA_VERSIONS, body_schema, upcast
from shared.logging import HEADER_REQUEST_ID
from shared.topology import HEADER_ACTOR, HEADER_FINGERPRINT, HEADER_SCHEMA_VERSION


class PoisonMessage(Exception):
    """The message can never be applied: it goes to the dead-letter queue with this reason."""

    def __init__(self, reason: str, command_id: uuid.UUID | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id


@dataclass(frozen=True)
class Envelope:
    """One command with what the worker needs to apply it and answer for it."""

    command_id: uuid.UUID
    name: CommandName
    body: CommandBody
    actor: Actor
    fingerprint: str | None
    reply_to: str | None
    received_at: datetime
    partition: int = 0  # the partition queue it came from: its events are relayed in that order
    request_id: str | None = None  # the HTTP request behind it (x-request-id), carried into its event


def _request_id(headers: dict[str, Any]) -> str | None:
    value = headers.get(HEADER_REQUEST_ID)
    return str(value)[:64] if value else None


def _command_id(message_id: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(message_id))
    except ValueError:
        raise PoisonMessage(f"message_id must be a UUID (the command id), got {message_id!r}") from None


def _actor(headers: dict[str, Any], bus_user: str | None, gateway_bus_user: str) -> Actor:
    if bus_user != gateway_bus_user:
        return Actor("service", service=bus_user or "unknown")
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


def _body(name: CommandName, body: bytes, version: int) -> CommandBody:
    """Validate against the schema of the version it was sent in, then upcast to the current one."""
    try:
        return upcast(name, body_schema(name, version).model_validate_json(body))
    except ValidationError as error:
        raise PoisonMessage(f"invalid {name} body (schema version {version}): {error}") from None


def decode(
    *,
    routing_key: str,
    message_id: str | None,
    headers: dict[str, Any],
    body: bytes,
    bus_user: str | None,
    reply_to: str | None,
    gateway_bus_user: str,
    partition: int = 0,
) -> Envelope:
    """Validate headers and body; raise PoisonMessage with a readable reason."""
    command_id = _command_id(message_id)
    try:
        name = _name(routing_key)
        version = _check_version(headers)
        envelope = Envelope(
            command_id=command_id,
            name=name,
            body=_body(name, body, version),
            actor=_actor(headers, bus_user, gateway_bus_user),
            fingerprint=str(headers.get(HEADER_FINGERPRINT) or "")[:64] or None,
            reply_to=reply_to or None,
            received_at=datetime.now(UTC),
            partition=partition,
            request_id=_request_id(headers),
        )
    except PoisonMessage as poison:
        raise PoisonMessage(poison.reason, command_id) from None
    return envelope
