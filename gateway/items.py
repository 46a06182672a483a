"""The item operations, one definition each: the FastAPI routes (gateway/routes/items.py) and the fast
path (gateway/hot.py) both call these, with the same parameter models (ItemCreate, ItemListing)."""

from typing import Annotated, Any

from fastapi import Response
from pydantic import BaseModel, Field

from gateway import repository
from gateway.pagination import CURSOR_PATTERN, MAX_SKIP, decode_cursor, next_cursor
from gateway.repository import UserRecord
from gateway.schemas import ItemCreate, ItemRead
from gateway.services import Services
from gateway.writes import Resource, dispatch_as_caller
from shared.contracts.commands import CommandName, CreateItem
from shared.contracts.fields import SearchText
from shared.etag import item_etag
from shared.models import ItemStatus
from shared.reading import ReadConnection


class ItemListing(BaseModel):
    """What a listing asks for: the query of `GET /api/v1/items` (the route and the fast path read it alike)."""

    skip: int = Field(0, ge=0, le=MAX_SKIP, description=f"rows to skip (at most {MAX_SKIP}: then use cursor)")
    limit: int = Field(100, ge=1, le=100)
    status: ItemStatus | None = None
    q: Annotated[SearchText | None, Field(description="title contains (any case)")] = None
    cursor: Annotated[
        str | None,
        Field(max_length=200, pattern=CURSOR_PATTERN, description="next_cursor of the previous page (replaces skip)"),
    ] = None


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


async def read_item(services: Services, token: int | None, item_id: int, owner_id: int) -> Any:
    """One of the owner's items, a row of repository.ITEM_COLUMNS (None: none of theirs has this id)."""
    return await services.reads.run(token, lambda conn: repository.get_owned_item(conn, item_id, owner_id))


async def list_items(services: Services, user: UserRecord, token: int | None, asked: ItemListing) -> dict[str, Any]:
    """A page of the caller's items, newest first, as ItemsPage's fields (422 for a cursor not ours)."""
    after = decode_cursor(asked.cursor) if asked.cursor else None
    status = asked.status.value if asked.status else None
    listing = repository.Listing(user.id, user.full_name, asked.limit, asked.skip, status, asked.q, after)
    rows, count = await services.reads.run(token, lambda conn: repository.list_items(conn, listing))
    return {"data": rows, "count": count, "next_cursor": next_cursor(list(rows), asked.limit)}
