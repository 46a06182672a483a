"""FastAPI dependencies: the process's services, the caller, the consistency token, Prefer: wait."""

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from gateway.http.problems import Problem
from gateway.http.request import FIELD_VALUE, TOKEN_PATTERN, parse_token, prefer_wait
from gateway.infrastructure.auth import caller
from gateway.infrastructure.idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from gateway.infrastructure.repository import UserRecord
from gateway.infrastructure.security import BEARER_KEY
from gateway.infrastructure.services import Services


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
    """The bearer token gateway/edge/middleware.py read (the header is read once, and only one is accepted)."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        if BEARER_KEY not in request.scope:  # an app without the edge in front
            return await super().__call__(request)
        token: str | None = request.scope[BEARER_KEY]
        if token is None:
            raise self.make_not_authenticated_error()
        return token


oauth2 = _EdgeBearer(tokenUrl="/api/v1/login/access-token", scheme_name="OAuth2PasswordBearer")


async def get_current_user(
    services: ServicesDep, token: TokenDep, access_token: Annotated[str, Depends(oauth2)]
) -> UserRecord:
    return await caller(access_token, token, settings=services.settings, users=services.users, reads=services.reads)


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]


async def get_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=KEY_PATTERN,
            description="A retry with the same key and body answers the first request's outcome, applied once",
        ),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not 0 < len(idempotency_key) <= MAX_KEY_LENGTH or not idempotency_key.isprintable():
        raise Problem(400, f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters")
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(get_idempotency_key)]
