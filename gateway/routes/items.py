"""The caller's items. Writes become commands; a foreign or missing id is 404, nothing published."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from gateway.http.problems import Problem
from gateway.http.request import ITEM_ID
from gateway.http.schemas import ItemCreate, ItemRead, ItemsPage, ItemStats, ItemUpdate
from gateway.infrastructure import repository
from gateway.operations import reads, writes
from gateway.operations.reads import ItemListing
from gateway.operations.writes import dispatch_as_caller
from gateway.routes.apidoc import header, link, write_answers
from gateway.routes.deps import CurrentUser, IdempotencyKeyDep, PreferWaitDep, ServicesDep, TokenDep
from shared.contracts.commands import CommandName, DeleteItem, UpdateItem
from shared.contracts.fields import ETag, Id
from shared.etag import item_etag

router = APIRouter(prefix="/items", tags=["items"])
NOT_FOUND = "no such item"
MISSING = "No such item of yours (another user's item is missing too)"
ItemId = Annotated[Id, Path(description="The item's id")]
CREATED = {verb: link(f"items-{verb}", item_id="$response.body#/id") for verb in ("read", "update", "delete")}
IfMatch = Annotated[ETag | None, Header(description="Apply only if the item's ETag is still one of these (else 412)")]


def _precondition(if_match: str | None) -> dict[str, str]:
    """If-Match travels with the command: the worker compares it with the item at apply time."""
    return {"if_match": if_match} if if_match else {}


async def _owned_item(services: ServicesDep, token: int | None, item_id: int, owner_id: int) -> Any:
    item = await services.reads.find(token, lambda conn: repository.get_owned_item(conn, item_id, owner_id))
    if item is None:
        raise Problem(404, NOT_FOUND)
    return item


@router.post(
    "",
    operation_id="items-create",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses=write_answers(
        201, ItemRead, {403: "The caller is not active", 404: "The caller is gone"}, etag=True, links=CREATED
    ),
)
async def create_item(
    body: ItemCreate, user: CurrentUser, services: ServicesDep, wait: PreferWaitDep, key: IdempotencyKeyDep
) -> Response:
    return await writes.create_item(services, user, body, wait=wait, key=key)


@router.get("", operation_id="items-list")
async def list_items(
    user: CurrentUser, services: ServicesDep, token: TokenDep, asked: Annotated[ItemListing, Query()]
) -> ItemsPage:
    """The caller's items, newest first, with the total count; `skip` or a keyset `cursor`."""
    return ItemsPage.model_validate(await reads.list_items(services, user, token, asked), from_attributes=True)


@router.get("/stats", operation_id="items-stats")
async def item_stats(user: CurrentUser, services: ServicesDep, token: TokenDep) -> ItemStats:
    """How many of the caller's items are in each status."""
    counts = await services.reads.run(token, lambda conn: repository.count_by_status(conn, user.id))
    return ItemStats(**counts, total=sum(counts.values()))


@router.get(
    ITEM_ID,
    operation_id="items-read",
    responses={200: {"headers": {"ETag": header("ETag")}}, 404: {"description": MISSING}},
)
async def read_item(
    item_id: ItemId, user: CurrentUser, services: ServicesDep, token: TokenDep, response: Response
) -> ItemRead:
    """One of the caller's items, with its ETag for a later If-Match."""
    item = await reads.read_item(services, token, item_id, user.id)
    if item is None:
        raise Problem(404, NOT_FOUND)
    response.headers["ETag"] = item_etag(item)
    return ItemRead.model_validate(item)


@router.patch(
    ITEM_ID,
    operation_id="items-update",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses=write_answers(200, ItemRead, {404: MISSING, 412: "If-Match: the item has changed since"}, etag=True),
)
async def update_item(
    item_id: ItemId,
    body: ItemUpdate,
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    wait: PreferWaitDep,
    key: IdempotencyKeyDep,
    if_match: IfMatch = None,
) -> Response:
    """Changes only the fields sent; with If-Match, only if the item is unchanged (else 412)."""
    await _owned_item(services, token, item_id, user.id)
    command = UpdateItem(item_id=item_id, **body.model_dump(exclude_unset=True), **_precondition(if_match))
    resource, route = writes.item_resource(user.id), f"PATCH /items/{item_id}"
    return await dispatch_as_caller(
        services, user.id, CommandName.ITEM_UPDATE, command,
        wait_s=wait, resource=resource, key=key, route=route, fingerprinted=command,
    )  # fmt: skip


@router.delete(
    ITEM_ID,
    operation_id="items-delete",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
    responses=write_answers(204, None, {404: MISSING, 412: "If-Match: the item has changed since"}),
)
async def delete_item(
    item_id: ItemId,
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    wait: PreferWaitDep,
    key: IdempotencyKeyDep,
    if_match: IfMatch = None,
) -> Response:
    await _owned_item(services, token, item_id, user.id)
    command = DeleteItem(item_id=item_id, **_precondition(if_match))
    resource, route = writes.item_resource(user.id), f"DELETE /items/{item_id}"
    return await dispatch_as_caller(
        services, user.id, CommandName.ITEM_DELETE, command,
        wait_s=wait, resource=resource, key=key, route=route, fingerprinted=command,
    )  # fmt: skip
