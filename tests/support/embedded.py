"""The embedded SQLite database, built by Alembic, and commands for the worker's own code."""

import uuid
from datetime import UTC, datetime

from shared.contracts.commands import CommandBody, CommandName
from shared.contracts.headers import Actor
from worker.envelope import Envelope

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def envelope(name: CommandName, body: CommandBody, actor: Actor) -> Envelope[CommandBody]:
    return Envelope(uuid.uuid4(), name, body, actor, None, None, datetime.now(UTC))
