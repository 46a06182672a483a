"""The embedded SQLite database, built by Alembic, and commands for the worker's own code."""

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import CommandBody, CommandName, CreateUser
from shared.contracts.headers import Actor
from worker.envelope import Envelope
from worker.unit_of_work import UnitOfWork

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def envelope(name: CommandName, body: CommandBody, actor: Actor) -> Envelope[CommandBody]:
    return Envelope(uuid.uuid4(), name, body, actor, None, None, datetime.now(UTC))


async def signed_up(engine: AsyncEngine, email: str | None = None) -> int:
    """A new user, signed up through the worker's own unit of work: its id."""
    body = CreateUser(email=email or f"{uuid.uuid4().hex[:8]}@example.org", hashed_password=HASH, full_name="O")
    [created] = (await UnitOfWork(engine).apply([envelope(CommandName.USER_CREATE, body, Actor.anonymous())])).outcomes
    assert created.resource_id is not None
    return created.resource_id
