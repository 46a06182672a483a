"""OAuth2 password login: a signed JWT for an active user."""

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from gateway import repository
from gateway.bus import BusUnavailable
from gateway.deps import UNAUTHORIZED, Services, ServicesDep, TokenDep
from gateway.limits import client_address, get_limits
from gateway.problems import Problem
from gateway.schemas import AccessToken
from gateway.security import create_access_token
from shared.contracts.commands import CommandName, UpdateUser
from shared.contracts.headers import Actor
from shared.models import User

router = APIRouter(tags=["login"])
log = logging.getLogger(__name__)


@router.post("/login/access-token", response_model=AccessToken)
async def login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep, token: TokenDep
) -> AccessToken:
    email = form.username.strip().lower()
    get_limits(request).login_account(client_address(request.scope, services.settings.trusted_proxy_hops), email)
    user = await services.reads.find(token, lambda session: repository.get_user_by_email(session, email))
    valid = await services.passwords.verify(user.hashed_password if user else None, form.password)
    if user is None or not valid:
        raise Problem(401, "incorrect email or password", headers=UNAUTHORIZED)
    if user.is_active is False:
        raise Problem(403, "inactive user")
    if services.passwords.needs_rehash(user.hashed_password):
        await _rehash(services, user, form.password)
    return AccessToken(access_token=create_access_token(user.id, services.settings))


async def _rehash(services: Services, user: User, password: str) -> None:
    """The stored hash has older parameters: publish the new hash as the user (best effort)."""
    command = UpdateUser(user_id=user.id, hashed_password=await services.passwords.hash(password))
    try:
        await services.bus.send(
            CommandName.USER_UPDATE, command,
            command_id=uuid.uuid4(), actor=Actor.user(user.id), owner_key=str(user.id),
        )  # fmt: skip
    except BusUnavailable:
        log.warning("rehash of user %d not published; the next login tries again", user.id)
