"""The caller's own command history (the audit log in the `command` inbox), newest first."""

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.http.reports import Activity, ActivityEntry
from gateway.infrastructure import repository
from gateway.routes.deps import CurrentUser, ServicesDep, TokenDep
from shared.contracts.headers import Actor

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me/activity", operation_id="users-me-activity")
async def my_activity(
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Activity:
    """Your commands (not the anonymous sign-up): name, when, status, code, resource and what changed."""
    actor = str(Actor.user(user.id))
    commands = await services.reads.run(token, lambda conn: repository.list_activity(conn, actor, limit))
    return Activity(data=[ActivityEntry.model_validate(command) for command in commands])
