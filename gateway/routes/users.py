"""Sign up, and the caller's own account."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from gateway.http.problems import Problem
from gateway.http.request import USER_ID
from gateway.http.schemas import PasswordChange, UserCreate, UserRead, UserUpdateMe
from gateway.infrastructure import repository
from gateway.infrastructure.idempotency import idempotent
from gateway.operations.writes import Resource, dispatch, dispatch_as_caller
from gateway.routes.apidoc import write_answers
from gateway.routes.deps import CurrentUser, IdempotencyKeyDep, PreferWaitDep, ServicesDep
from shared.contracts.commands import CommandName, CreateUser, DeleteUser, UpdateUser
from shared.contracts.fields import Id
from shared.contracts.headers import Actor
from shared.reading import ReadConnection

router = APIRouter(prefix="/users", tags=["users"])


async def _read_user(conn: ReadConnection, user_id: int) -> UserRead | None:
    user = await repository.get_user(conn, user_id)
    return UserRead.model_validate(user) if user else None


USER = Resource(path=lambda user_id: f"/api/v1/users/{user_id}", read=_read_user)
GONE = "The caller is gone"
EMAIL_TAKEN = "Another user has this email"


@router.post(
    "",
    operation_id="users-signup",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses=write_answers(201, UserRead, {409: EMAIL_TAKEN}),
)
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


@router.get("/me", operation_id="users-me")
async def read_me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.get(USER_ID, operation_id="users-read", responses={404: {"description": "Not the caller's own id"}})
async def read_user(user_id: Annotated[Id, Path(description="The user's id")], user: CurrentUser) -> UserRead:
    """A user's own record by id; anyone else's is 404."""
    if user_id != user.id:
        raise Problem(404, "no such user")
    return UserRead.model_validate(user)


@router.patch(
    "/me",
    operation_id="users-update-me",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses=write_answers(200, UserRead, {404: GONE, 409: EMAIL_TAKEN}),
)
async def update_me(
    body: UserUpdateMe, user: CurrentUser, services: ServicesDep, wait: PreferWaitDep, key: IdempotencyKeyDep
) -> Response:
    command = UpdateUser(user_id=user.id, **body.model_dump(exclude_unset=True))
    return await dispatch_as_caller(
        services, user.id, CommandName.USER_UPDATE, command,
        wait_s=wait, resource=USER, key=key, route="PATCH /users/me", fingerprinted=body,
    )  # fmt: skip


@router.put(
    "/me/password",
    operation_id="users-change-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses={
        **write_answers(200, UserRead, {404: GONE}),
        400: {"description": "The new password is the current one"},
        403: {"description": "The current password is not correct"},
    },
)
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


@router.delete(
    "/me",
    operation_id="users-delete-me",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses=write_answers(204, None, {404: GONE}),
)
async def delete_me(user: CurrentUser, services: ServicesDep, wait: PreferWaitDep, key: IdempotencyKeyDep) -> Response:
    """Delete the caller and, by cascade, all their items."""
    return await dispatch_as_caller(
        services, user.id, CommandName.USER_DELETE, DeleteUser(user_id=user.id),
        wait_s=wait, resource=USER, key=key, route="DELETE /users/me",
    )  # fmt: skip
