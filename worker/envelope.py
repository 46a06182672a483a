"""One delivered command, validated: what the worker needs to apply it and answer for it."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from shared.contracts.base import CommandBody
from shared.contracts.commands import CommandName
from shared.contracts.headers import Actor
from shared.settings import ServiceGrant

BodyT = TypeVar("BodyT", bound=CommandBody, covariant=True)


class PoisonMessage(Exception):
    """The message can never be applied: it goes to the dead-letter queue with this reason, and
    when it names a command id, that command's outcome says so too."""

    def __init__(
        self, reason: str, command_id: uuid.UUID | None = None, name: str = "", actor: Actor | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id
        self.name = name  # the routing key, as sent
        self.actor = actor  # who sent it, when the headers say (else the outcome names no user)


@dataclass(frozen=True)
class Envelope(Generic[BodyT]):
    """One command with its body in the current schema version, its actor and where to answer."""

    command_id: uuid.UUID
    name: CommandName
    body: BodyT
    actor: Actor
    fingerprint: str | None
    reply_to: str | None
    received_at: datetime
    partition: int = 0  # the partition queue it came from: its events are relayed in that order
    request_id: str | None = None  # the HTTP request behind it (x-request-id), carried into its event
    grant: ServiceGrant | None = None  # a service actor's grant (SERVICE_GRANTS), looked up at decode
    idempotency_key: uuid.UUID | None = None  # x-idempotency-key: another command with it is refused
