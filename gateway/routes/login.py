"""OAuth2 password login: a signed JWT for an active user."""

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request

from gateway.http.problems import Problem
from gateway.http.schemas import AccessToken, LoginForm
from gateway.infrastructure import repository
from gateway.infrastructure.auth import UNAUTHORIZED
from gateway.infrastructure.bus import BusUnavailable
from gateway.infrastructure.limits import client_address, get_limits
from gateway.infrastructure.repository import UserRecord
from gateway.infrastructure.security import create_access_token
from gateway.infrastructure.services import Services
from gateway.operations.writes import awaited_outcome
from gateway.routes.deps import ServicesDep, TokenDep
from shared.contracts.commands import CommandName, UpdateUser
from shared.contracts.headers import Actor
from shared.models import CommandStatus
from shared.reading import DatabaseUnavailable

router = APIRouter(tags=["login"])
log = logging.getLogger(__name__)


@router.post(
    "/login/access-token",
    operation_id="login",
    responses={401: {"description": "Incorrect email or password"}, 403: {"description": "The user is not active"}},
)
async def login(
    request: Request, form: Annotated[LoginForm, Form()], services: ServicesDep, token: TokenDep
) -> AccessToken:
    email = form.username.strip().lower()
    get_limits(request).login_account(client_address(request.scope, services.settings.trusted_proxy_hops), email)
    user = await services.reads.find(token, lambda conn: repository.get_user_by_email(conn, email))
    valid = await services.passwords.verify(user.hashed_password if user else None, form.password)
    if user is None or not valid:
        raise Problem(401, "incorrect email or password", headers=UNAUTHORIZED)
    if user.is_active is False:
        raise Problem(403, "inactive user")
    stamped = user.hashed_password
    if services.passwords.needs_rehash(user.hashed_password):
        stamped = await _rehash(services, user, form.password)
    return AccessToken(access_token=create_access_token(user.id, stamped, services.settings))


async def _rehash(services: Services, user: UserRecord, password: str) -> str:
    """The stored hash has older parameters: publish a new one as the user, and return the hash
    stored once the login is over (the token is tied to it). It replaces only the hash read here,
    so a password changed meanwhile is never overwritten by this one. Its outcome comes as a write's
    does: on the reply queue, or from the command's status if that queue died with its node."""
    new_hash = await services.passwords.hash(password)
    command = UpdateUser(user_id=user.id, hashed_password=new_hash, if_password_hash=user.hashed_password)
    command_id = uuid.uuid4()
    future = services.bus.expect(command_id)
    try:
        await services.bus.send(
            CommandName.USER_UPDATE, command,
            command_id=command_id, actor=Actor.user(user.id), owner_key=str(user.id), reply=True,
        )  # fmt: skip
        outcome = await awaited_outcome(services, command_id, future, services.settings.prefer_wait_max)
    except (BusUnavailable, DatabaseUnavailable):
        outcome = None
    finally:
        services.bus.forget(command_id, future)
    if outcome is None:
        log.warning("rehash of user %d not confirmed; the next login tries again", user.id)
        return user.hashed_password
    return new_hash if outcome.status == CommandStatus.APPLIED else user.hashed_password
