"""The write operations: a validated request becomes a published command, its outcome an HTTP answer.

`create_item` is the one definition of `POST /api/v1/items` that the FastAPI route
(gateway/routes/items.py) and the fast path (gateway/edge/hot.py) both call; it sits beside the dispatch it
hands its command to, so the write path from the edge to the publish crosses one operations module.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.http.problems import problem_response
from gateway.http.request import TOKEN_HEADER, parse_token
from gateway.http.schemas import Accepted, ItemCreate, ItemRead
from gateway.infrastructure import repository
from gateway.infrastructure.bus import BusUnavailable
from gateway.infrastructure.idempotency import IdempotentRequest, idempotent
from gateway.infrastructure.repository import UserRecord
from gateway.infrastructure.services import Services
from shared.contracts.commands import CommandBody, CommandName, CreateItem
from shared.contracts.headers import Actor
from shared.contracts.outcomes import Outcome, OutcomeCode
from shared.etag import item_etag
from shared.models import CommandStatus
from shared.reading import ReadConnection

RETRY_AFTER_S = "2"
REJECTION_STATUS = {
    OutcomeCode.EMAIL_TAKEN: 409,
    OutcomeCode.NOT_FOUND: 404,
    OutcomeCode.OWNER_INACTIVE: 403,
    OutcomeCode.FORBIDDEN: 403,
    OutcomeCode.PRECONDITION_FAILED: 412,
    OutcomeCode.IDEMPOTENCY_KEY_REUSED: 422,
}
SUCCESS_STATUS = {OutcomeCode.CREATED: 201, OutcomeCode.UPDATED: 200, OutcomeCode.DELETED: 204}


@dataclass(frozen=True)
class Resource:
    """How to show what a command created or changed."""

    path: Callable[[int], str]
    read: Callable[[ReadConnection, int], Awaitable[BaseModel | None]]
    etag: Callable[[BaseModel], str] | None = None


def item_resource(owner_id: int) -> Resource:
    """How a write's answer shows the item it created or changed."""

    async def read(conn: ReadConnection, item_id: int) -> ItemRead | None:
        item = await repository.get_owned_item(conn, item_id, owner_id)
        return ItemRead.model_validate(item) if item else None

    return Resource(path=lambda item_id: f"/api/v1/items/{item_id}", read=read, etag=item_etag)


async def create_item(
    services: Services, user: UserRecord, fields: ItemCreate, *, wait: float | None, key: str | None
) -> Response:
    """Publish the caller's new item (its fields were validated as ItemCreate, the same types as CreateItem's)."""
    command = CreateItem.model_construct(fields.model_fields_set | {"owner_id"}, owner_id=user.id, **dict(fields))
    return await dispatch_as_caller(
        services, user.id, CommandName.ITEM_CREATE, command,
        wait_s=wait, resource=item_resource(user.id), key=key, route="POST /items", fingerprinted=fields,
    )  # fmt: skip


def command_location(command_id: uuid.UUID) -> str:
    return f"/api/v1/commands/{command_id}"


async def dispatch(
    services: Services,
    name: CommandName,
    body: CommandBody,
    *,
    actor: Actor,
    owner_key: str,
    wait_s: float | None,
    resource: Resource,
    idempotent: IdempotentRequest | None = None,
) -> Response:
    """Publish; answer 202 at once, or the outcome if it comes within `Prefer: wait`.

    With an Idempotency-Key whose command is already known, answer its outcome without publishing
    (or 422 if the key was used for a different request).
    """
    if idempotent is not None and (known := await _known_outcome(services, idempotent, actor)) is not None:
        return await answer(services, known, resource)
    command_id = idempotent.command_id if idempotent else uuid.uuid4()
    future = services.bus.expect(command_id) if wait_s else None
    try:
        await services.bus.send(
            name, body, command_id=command_id, actor=actor, owner_key=owner_key,
            headers=idempotent.headers() if idempotent else None,
            reply=future is not None,
        )  # fmt: skip
        if future is None:
            return accepted(command_id)
        outcome = await awaited_outcome(services, command_id, future, wait_s or 0.0)
        if outcome is None:
            return accepted(command_id, waited=True)
    except BusUnavailable:
        return problem_response(
            503,
            "the message broker did not confirm the command; it may still be applied, at most once",
            headers={"Retry-After": RETRY_AFTER_S},
            command_id=str(command_id),
        )
    finally:
        if future is not None:
            services.bus.forget(command_id, future)
    return await answer(services, outcome, resource)


async def dispatch_as_caller(
    services: Services,
    user_id: int,
    name: CommandName,
    body: CommandBody,
    *,
    wait_s: float | None,
    resource: Resource,
    key: str | None = None,
    route: str = "",
    fingerprinted: BaseModel | None = None,
) -> Response:
    """A command of the caller's own: acted by them and ordered with their other commands. With an
    Idempotency-Key, its id comes from (caller, key) and a retry must repeat `fingerprinted` on `route`."""
    scope = str(user_id)
    return await dispatch(
        services, name, body, actor=Actor.user(user_id), owner_key=scope, wait_s=wait_s, resource=resource,
        idempotent=idempotent(services.settings.secret_key, scope, key, route, fingerprinted),
    )  # fmt: skip


async def awaited_outcome(
    services: Services, command_id: uuid.UUID, future: asyncio.Future[Outcome], wait_s: float
) -> Outcome | None:
    """A published command's outcome within wait_s (None: not yet), from this gateway's reply queue, or
    from the command's recorded status if that queue died meanwhile with its broker node (the outcome
    sent to it died too)."""
    return await services.bus.outcome(future, wait_s, lambda: _recorded_outcome(services, command_id))


async def _known_outcome(services: Services, idempotent: IdempotentRequest, actor: Actor) -> Outcome | None:
    """What this key already did, read on the primary (the strongest answer): the outcome of this
    request, or a refusal when the key was used for another; None when it is new, or when its
    command was dead-lettered (the retry publishes it again: it is applied at its retry)."""

    async def read(conn: ReadConnection) -> tuple[Any, str | None]:
        command = await repository.get_command_by_key(conn, idempotent.key_id, str(actor))
        if command is None or command.status == CommandStatus.DEAD_LETTERED:
            return None, None
        return command, await repository.replayed_position(conn) if services.reads.watermark is not None else None

    command, token = await services.reads.latest(read)
    if command is None:
        return None
    if command.command_id == idempotent.command_id:
        return _outcome_of(command, token)
    return Outcome(
        command_id=command.command_id,
        name=command.name,
        status=CommandStatus.REJECTED,
        code=OutcomeCode.IDEMPOTENCY_KEY_REUSED,
        detail="this Idempotency-Key was already used for a different request",
    )


async def _recorded_outcome(services: Services, command_id: uuid.UUID) -> Outcome | None:
    """The outcome the worker recorded for a command, read on the primary; None while it is pending."""

    async def read(conn: ReadConnection) -> tuple[Any, str | None]:
        command = await repository.get_command(conn, command_id)
        if command is None:
            return None, None
        return command, await repository.replayed_position(conn) if services.reads.watermark is not None else None

    command, token = await services.reads.latest(read)
    return None if command is None else _outcome_of(command, token)


def _outcome_of(command: Any, token: str | None) -> Outcome:
    return Outcome(
        command_id=command.command_id,
        name=command.name,
        status=CommandStatus(command.status),
        code=OutcomeCode(command.code),
        detail=command.detail,
        resource_id=command.resource_id,
        token=token,
    )


def accepted(command_id: uuid.UUID, *, waited: bool = False) -> Response:
    headers = {"Location": command_location(command_id)}
    if waited:
        headers["Preference-Applied"] = "wait"
    return JSONResponse(Accepted(command_id=command_id).model_dump(mode="json"), 202, headers=headers)


async def answer(services: Services, outcome: Outcome, resource: Resource) -> Response:
    """The outcome as an HTTP status (the README's table of writes), with the consistency token."""
    headers = {"Preference-Applied": "wait"}
    if outcome.token:
        headers[TOKEN_HEADER] = outcome.token
    if outcome.status == CommandStatus.DEAD_LETTERED:
        headers["Retry-After"] = RETRY_AFTER_S
        return problem_response(503, outcome.detail or "dead-lettered", headers, command_id=str(outcome.command_id))
    if outcome.status == CommandStatus.REJECTED:
        status = REJECTION_STATUS.get(outcome.code, 409)
        return problem_response(status, outcome.detail, headers, code=outcome.code.value)
    status = SUCCESS_STATUS[outcome.code]
    if status == 204 or outcome.resource_id is None:
        return Response(status_code=204, headers=headers)
    token = parse_token(outcome.token) if outcome.token else None
    resource_id = outcome.resource_id
    shown = await services.reads.run(token, lambda conn: resource.read(conn, resource_id))
    if status == 201:
        headers["Location"] = resource.path(outcome.resource_id)
    if shown is None:  # changed again since: the command's own record still answers
        return JSONResponse(outcome.model_dump(mode="json"), status, headers=headers)
    if resource.etag is not None:
        headers["ETag"] = resource.etag(shown)
    return JSONResponse(shown.model_dump(mode="json"), status, headers=headers)
