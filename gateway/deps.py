"""FastAPI dependencies: the process's services, the caller, the consistency token, Prefer: wait."""

import re
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from gateway import repository
from gateway.bus import CommandBus
from gateway.consistency import TOKEN_PATTERN, Reads, parse_token
from gateway.limits import RateLimits
from gateway.problems import Problem
from gateway.recent_users import RecentUsers
from gateway.repository import UserRecord
from gateway.security import BEARER_KEY, Passwords, password_stamp, subject_of
from gateway.status import StatusProbe
from shared.settings import Settings


@dataclass
class Services:
    """What one gateway process holds for its whole life (set up in the lifespan)."""

    settings: Settings
    bus: CommandBus
    reads: Reads
    passwords: Passwords
    status: StatusProbe
    users: RecentUsers
    limits: RateLimits


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_consistency_token(
    x_consistency_token: Annotated[
        str | None,
        Header(
            pattern=TOKEN_PATTERN,
            description="A token from an earlier answer: this request's reads see at least that write.",
            examples=["0/16B3748"],
        ),
    ] = None,
) -> int | None:
    return parse_token(x_consistency_token) if x_consistency_token is not None else None


TokenDep = Annotated[int | None, Depends(get_consistency_token)]

# Any HTTP field value (RFC 9110 §5.5): only `wait` is read, anything else is ignored, never refused.
FIELD_VALUE = r"^[\t\x20-\x7e\x80-\xff]*$"
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)


def prefer_wait(value: str | None, cap: float) -> float | None:
    """Seconds to wait for the outcome (RFC 7240 `Prefer: wait=N`, capped); a bad value is ignored."""
    match = _PREFER_WAIT.search(value or "")
    return min(float(match.group(1)), cap) if match else None


async def get_prefer_wait(
    services: ServicesDep,
    prefer: Annotated[
        str | None,
        Header(
            json_schema_extra={"pattern": FIELD_VALUE},  # documented only: nothing else can be sent
            description="`wait=N`: answer the outcome if it comes within N seconds (at most 10), else 202.",
            examples=["wait=10"],
        ),
    ] = None,
) -> float | None:
    return prefer_wait(prefer, services.settings.prefer_wait_max)


PreferWaitDep = Annotated[float | None, Depends(get_prefer_wait)]


class _EdgeBearer(OAuth2PasswordBearer):
    """The bearer token gateway/edge.py read (the header is read once, and only one is accepted)."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        if BEARER_KEY not in request.scope:  # an app without the edge in front
            return await super().__call__(request)
        token: str | None = request.scope[BEARER_KEY]
        if token is None:
            raise self.make_not_authenticated_error()
        return token


oauth2 = _EdgeBearer(tokenUrl="/api/v1/login/access-token")
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def get_current_user(
    services: ServicesDep, token: TokenDep, access_token: Annotated[str, Depends(oauth2)]
) -> UserRecord:
    return await caller(services, access_token, token)


async def caller(services: Services, access_token: str, token: int | None) -> UserRecord:
    """The caller: a valid token of a user who exists, is active and has the password the token was
    issued under (a deleted user's token fails, and so do older tokens after a password change)."""
    try:
        subject = subject_of(access_token, services.settings)
    except jwt.InvalidTokenError:
        raise Problem(401, "invalid or expired access token", headers=UNAUTHORIZED) from None
    user = services.users.get(subject.user_id) if token is None else None
    if user is None:
        user = await services.reads.find(token, lambda conn: repository.get_user(conn, subject.user_id))
        if user is None or user.is_active is False:
            raise Problem(401, "invalid or expired access token", headers=UNAUTHORIZED)
        services.users.remember(user)
    if password_stamp(user.hashed_password, services.settings) != subject.password_stamp:
        raise Problem(401, "invalid or expired access token (the password changed)", headers=UNAUTHORIZED)
    return user


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]
