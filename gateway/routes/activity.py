"""The caller's own command history (the audit log in the `command` inbox), newest first."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from gateway.deps import CurrentUser, ServicesDep, TokenDep
from gateway.schemas import examples
from shared.contracts.headers import Actor
from shared.db import ReadSession
from shared.models import Command, CommandStatus

router = APIRouter(prefix="/users", tags=["users"])


class ActivityEntry(BaseModel):
    """One command of the caller: what it was, when, its outcome and what it changed."""

    model_config = ConfigDict(from_attributes=True)

    command_id: uuid.UUID
    name: str
    status: CommandStatus
    code: str
    detail: str | None = None
    resource_id: int | None = None
    changes: dict[str, Any] | None = None  # secrets are recorded as "<changed>", never their value
    received_at: datetime
    applied_at: datetime


class Activity(BaseModel):
    model_config = examples(
        {
            "data": [
                {
                    "command_id": "3f0c2b1e-7d4a-4c8e-9a51-2b6f0e9d1c44",
                    "name": "item.update",
                    "status": "applied",
                    "code": "updated",
                    "resource_id": 7,
                    "changes": {"status": "completed"},
                    "received_at": "2026-11-29T10:15:00Z",
                    "applied_at": "2026-11-29T10:15:00Z",
                }
            ]
        }
    )

    data: list[ActivityEntry]


async def list_activity(session: ReadSession, actor: str, limit: int) -> Sequence[Command]:
    """The actor's commands, newest first (index ix_command_actor_applied_at)."""
    query = select(Command).where(Command.actor == actor).order_by(Command.applied_at.desc()).limit(limit)
    return (await session.scalars(query)).all()


@router.get("/me/activity", operation_id="users-me-activity")
async def my_activity(
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Activity:
    """Your commands (not the anonymous sign-up): name, when, status, code, resource and what changed."""
    async with services.reads.session(token) as session:
        commands = await list_activity(session, str(Actor.user(user.id)), limit)
    return Activity(data=[ActivityEntry.model_validate(command) for command in commands])
