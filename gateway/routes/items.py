"""The caller's items. Writes become commands; a foreign or missing id is 404, nothing published."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from gateway import repository
from gateway.deps import CurrentUser, PreferWaitDep, ServicesDep, TokenDep
from gateway.problems import Problem
from gateway.schemas import Accepted, ItemCreate, ItemRead, ItemsPage, ItemUpdate
from gateway.writes import Resource, dispatch
from shared.contracts.commands import CommandName, CreateItem, DeleteItem, UpdateItem
from shared.contracts.headers import Actor
from shared.db import ReadSession
from shared.models import Item, ItemStatus

router = APIRouter(prefix="/items", tags=["items"])
ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"model": Accepted, "description": "Accepted: the command is queued"}}
NOT_FOUND = "no such item"


def _resource(owner_id: int) -> Resource:
    async def read(session: ReadSession, item_id: int) -> ItemRead | None:
        item = await repository.get_owned_item(session, item_id, owner_id)
        return ItemRead.model_validate(item) if item else None

    return Resource(path=lambda item_id: f"/api/v1/items/{item_id}", read=read)


async def _owned_item(services: ServicesDep, token: int | None, item_id: int, owner_id: int) -> Item:
    item = await services.reads.find(token, lambda session: repository.get_owned_item(session, item_id, owner_id))
    if item is None:
        raise Problem(404, NOT_FOUND)
    return item


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses={201: {"model": ItemRead}, **ACCEPTED})
async def create_item(body: ItemCreate, user: CurrentUser, services: ServicesDep, wait: PreferWaitDep) -> Response:
    command = CreateItem(owner_id=user.id, **body.model_dump(exclude_unset=True))
    return await dispatch(
        services, CommandName.ITEM_CREATE, command,
        actor=Actor.user(user.id), owner_key=str(user.id), wait_s=wait, resource=_resource(user.id),
    )  # fmt: skip


@router.get("", response_model=ItemsPage)
async def list_items(
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    status: ItemStatus | None = None,
) -> ItemsPage:
    """The caller's items, newest first, with the total count."""
    async with services.reads.session(token) as session:
        items, count = await repository.list_items(
            session, user.id, skip=skip, limit=limit, status=status.value if status else None
        )
    return ItemsPage(data=[ItemRead.model_validate(item) for item in items], count=count)


@router.get("/{item_id}", response_model=ItemRead)
async def read_item(item_id: int, user: CurrentUser, services: ServicesDep, token: TokenDep) -> ItemRead:
    async with services.reads.session(token) as session:
        item = await repository.get_owned_item(session, item_id, user.id)
    if item is None:
        raise Problem(404, NOT_FOUND)
    return ItemRead.model_validate(item)


@router.patch("/{item_id}", status_code=status.HTTP_202_ACCEPTED, responses={200: {"model": ItemRead}, **ACCEPTED})
async def update_item(
    item_id: int,
    body: ItemUpdate,
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    wait: PreferWaitDep,
) -> Response:
    """Changes only the fields sent."""
    await _owned_item(services, token, item_id, user.id)
    command = UpdateItem(item_id=item_id, **body.model_dump(exclude_unset=True))
    return await dispatch(
        services, CommandName.ITEM_UPDATE, command,
        actor=Actor.user(user.id), owner_key=str(user.id), wait_s=wait, resource=_resource(user.id),
    )  # fmt: skip


@router.delete("/{item_id}", status_code=status.HTTP_202_ACCEPTED, responses={204: {}, **ACCEPTED})
async def delete_item(
    item_id: int, user: CurrentUser, services: ServicesDep, token: TokenDep, wait: PreferWaitDep
) -> Response:
    await _owned_item(services, token, item_id, user.id)
    return await dispatch(
        services, CommandName.ITEM_DELETE, DeleteItem(item_id=item_id),
        actor=Actor.user(user.id), owner_key=str(user.id), wait_s=wait, resource=_resource(user.id),
    )  # fmt: skip
