"""OAuth2 password login: a signed JWT for an active user."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from gateway import repository
from gateway.deps import UNAUTHORIZED, ServicesDep, TokenDep
from gateway.problems import Problem
from gateway.schemas import AccessToken
from gateway.security import create_access_token

router = APIRouter(tags=["login"])


@router.post("/login/access-token", response_model=AccessToken)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep, token: TokenDep
) -> AccessToken:
    email = form.username.strip().lower()
    user = await services.reads.find(token, lambda session: repository.get_user_by_email(session, email))
    valid = await services.passwords.verify(user.hashed_password if user else None, form.password)
    if user is None or not valid:
        raise Problem(401, "incorrect email or password", headers=UNAUTHORIZED)
    if user.is_active is False:
        raise Problem(403, "inactive user")
    return AccessToken(access_token=create_access_token(user.id, services.settings))
