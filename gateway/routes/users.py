"""Sign up, and the caller's own account."""

from typing import Any

from fastapi import APIRouter, Response, status

from gateway import repository
from gateway.deps import CurrentUser, PreferWaitDep, ServicesDep
from gateway.idempotency import IdempotencyKeyDep, idempotent
from gateway.problems import Problem
from gateway.schemas import Accepted, PasswordChange, UserCreate, UserRead, UserUpdateMe
from gateway.writes import Resource, dispatch, dispatch_as_caller
from shared.contracts.commands import CommandName, CreateUser, DeleteUser, UpdateUser
from shared.contracts.headers import Actor
from shared.db import ReadSession

router = APIRouter(prefix="/users", tags=["users"])


async def _read_user(session: ReadSession, user_id: int) -> UserRead | None:
    user = await repository.get_user(session, user_id)
    return UserRead.model_validate(user) if user else None


USER = Resource(path=lambda user_id: f"/api/v1/users/{user_id}", read=_read_user)
ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"model": Accepted, "description": "Accepted: the command is queued"}}


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses={201: {"model": UserRead}, **ACCEPTED})
async def sign_up(body: UserCreate, services: ServicesDep, wait: PreferWaitDep, key: IdempotencyKeyDep) -> Response:
    """Sign up: the password is hashed here (argon2id) and only the hash is published."""
    command = CreateUser(
        email=body.email,
        hashed_password=await services.passwords.hash(body.password),
        full_name=body.full_name,
    )
    return await dispatch(
        services, CommandName.USER_CREATE, command,
        actor=Actor.anonymous(), owner_key=body.email, wait_s=wait, resource=USER,
        idempotent=idempotent(
            services.settings.secret_key, f"signup:{body.email}", key, "POST /users", body, unhashed={"password"}
        ),
    )  # fmt: skip


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.get("/{user_id}", response_model=UserRead)
async def read_user(user_id: int, user: CurrentUser) -> UserRead:
    """A user's own record by id; anyone else's is 404."""
    if user_id != user.id:
        raise Problem(404, "no such user")
    return UserRead.model_validate(user)


@router.patch("/me", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": UserRead}, **ACCEPTED})
async def update_me(
    body: UserUpdateMe, user: CurrentUser, services: ServicesDep, wait: PreferWaitDep, key: IdempotencyKeyDep
) -> Response:
    command = UpdateUser(user_id=user.id, **body.model_dump(exclude_unset=True))
    return await dispatch_as_caller(
        services, user.id, CommandName.USER_UPDATE, command,
        wait_s=wait, resource=USER, key=key, route="PATCH /users/me", fingerprinted=body,
    )  # fmt: skip


@router.put("/me/password", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": UserRead}, **ACCEPTED})
async def change_password(
    body: PasswordChange, user: CurrentUser, services: ServicesDep, wait: PreferWaitDep
) -> Response:
    """Change the password: the current one must be right (403), the new one must differ (400)."""
    if not await services.passwords.verify(user.hashed_password, body.current_password):
        raise Problem(403, "the current password is not correct")
    if body.new_password == body.current_password:
        raise Problem(400, "the new password must differ from the current one")
    command = UpdateUser(user_id=user.id, hashed_password=await services.passwords.hash(body.new_password))
    return await dispatch_as_caller(services, user.id, CommandName.USER_UPDATE, command, wait_s=wait, resource=USER)


@router.delete("/me", status_code=status.HTTP_202_ACCEPTED, responses={204: {}, **ACCEPTED})
async def delete_me(user: CurrentUser, services: ServicesDep, wait: PreferWaitDep, key: IdempotencyKeyDep) -> Response:
    """Delete the caller and, by cascade, all their items."""
    return await dispatch_as_caller(
        services, user.id, CommandName.USER_DELETE, DeleteUser(user_id=user.id),
        wait_s=wait, resource=USER, key=key, route="DELETE /users/me",
    )  # fmt: skip
