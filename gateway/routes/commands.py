"""A command's outcome, for its own actor only."""

import uuid
from typing import Any

from fastapi import APIRouter, Response

from gateway.http.problems import Problem
from gateway.http.request import TOKEN_HEADER
from gateway.http.schemas import CommandRead
from gateway.infrastructure import repository
from gateway.infrastructure.repository import UserRecord
from gateway.routes.deps import CurrentUser, ServicesDep, TokenDep
from shared.contracts.commands import CommandName
from shared.contracts.headers import Actor
from shared.models import CommandStatus
from shared.reading import ReadConnection

router = APIRouter(prefix="/commands", tags=["commands"])


def _is_callers(command: Any, user: UserRecord) -> bool:
    """The actor's own commands, and the sign-up that created the caller."""
    if command.actor == str(Actor.user(user.id)):
        return True
    return bool(command.name == CommandName.USER_CREATE and command.resource_id == user.id)


@router.get(
    "/{command_id}",
    operation_id="commands-read",
    responses={404: {"description": "Another actor's command"}},
)
async def read_command(
    command_id: uuid.UUID, user: CurrentUser, services: ServicesDep, token: TokenDep, response: Response
) -> CommandRead:
    """`pending` until the worker has recorded an outcome; another actor's command is 404."""

    async def read(conn: ReadConnection) -> tuple[Any, str | None]:
        command = await repository.get_command(conn, command_id)
        seen = (
            await repository.replayed_position(conn)
            if command is not None and services.reads.watermark is not None
            else None
        )
        return command, seen  # what this connection sees includes the commit

    command, seen = await services.reads.run(token, read)
    if command is None:
        return CommandRead(command_id=command_id, status=CommandStatus.PENDING)
    if not _is_callers(command, user):
        raise Problem(404, "no such command")
    if seen is not None:
        response.headers[TOKEN_HEADER] = seen
    return CommandRead(
        command_id=command.command_id,
        name=command.name,
        status=CommandStatus(command.status),
        code=command.code,
        detail=command.detail,
        resource_id=command.resource_id,
        applied_at=command.applied_at,
    )
