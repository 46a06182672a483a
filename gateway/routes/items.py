"""The caller's items. Writes become commands; a foreign or missing id is 404, nothing published."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from gateway import repository
from gateway.apidoc import header, link, write_answers
from gateway.deps import CurrentUser, PreferWaitDep, Services, ServicesDep, TokenDep
from gateway.idempotency import IdempotencyKeyDep
from gateway.pagination import Cursor, Skip, decode_cursor, next_cursor
from gateway.paths import ITEM_ID
from gateway.problems import Problem
from gateway.schemas import ItemCreate, ItemRead, ItemsPage, ItemStats, ItemUpdate
from gateway.writes import Resource, dispatch_as_caller
from shared.contracts.commands import CommandName, CreateItem, DeleteItem, UpdateItem
from shared.contracts.fields import ETag, Id, SearchText
from shared.etag import item_etag
from shared.models import ItemStatus
from shared.reading import ReadConnection

router = APIRouter(prefix="/items", tags=["items"])
NOT_FOUND = "no such item"
MISSING = "No such item of yours (another user's item is missing too)"
ItemId = Annotated[Id, Path(description="The item's id")]
CREATED = {verb: link(f"items-{verb}", item_id="$response.body#/id") for verb in ("read", "update", "delete")}
IfMatch = Annotated[ETag | None, Header(description="Apply only if the item's ETag is still one of these (else 412)")]


def item_resource(owner_id: int) -> Resource:
    """How a write's answer shows the item it created or changed."""

    async def read(conn: ReadConnection, item_id: int) -> ItemRead | None:
        item = await repository.get_owned_item(conn, item_id, owner_id)
        return ItemRead.model_validate(item) if item else None

    return Resource(path=lambda item_id: f"/api/v1/items/{item_id}", read=read, etag=item_etag)


async def read_owned_item(services: Services, token: int | None, item_id: int, owner_id: int) -> Any:
    """One of the owner's items, a row of repository.ITEM_COLUMNS (None: none of theirs has this id)."""
    return await services.reads.run(token, lambda conn: repository.get_owned_item(conn, item_id, owner_id))


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
    command = CreateItem(owner_id=user.id, **body.model_dump(exclude_unset=True))
    return await dispatch_as_caller(
        services, user.id, CommandName.ITEM_CREATE, command,
        wait_s=wait, resource=item_resource(user.id), key=key, route="POST /items", fingerprinted=body,
    )  # fmt: skip


@router.get("", operation_id="items-list")
async def list_items(
    user: CurrentUser,
    services: ServicesDep,
    token: TokenDep,
    skip: Skip = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    status: ItemStatus | None = None,
    q: Annotated[SearchText | None, Query(description="title contains (any case)")] = None,
    cursor: Cursor = None,
) -> ItemsPage:
    """The caller's items, newest first, with the total count; `skip` or a keyset `cursor`."""
    after = decode_cursor(cursor) if cursor else None
    asked = repository.Listing(user.id, user.full_name, limit, skip, status.value if status else None, q, after)
    rows, count = await services.reads.run(token, lambda conn: repository.list_items(conn, asked))
    items = [ItemRead.model_validate(row) for row in rows]
    return ItemsPage(data=items, count=count, next_cursor=next_cursor(list(rows), limit))


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
    item = await read_owned_item(services, token, item_id, user.id)
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
    return await dispatch_as_caller(
        services, user.id, CommandName.ITEM_UPDATE, command,
        wait_s=wait, resource=item_resource(user.id), key=key, route=f"PATCH /items/{item_id}", fingerprinted=command,
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
    return await dispatch_as_caller(
        services, user.id, CommandName.ITEM_DELETE, command,
        wait_s=wait, resource=item_resource(user.id), key=key, route=f"DELETE /items/{item_id}", fingerprinted=command,
    )  # fmt: skip
