"""The item reads, one definition each: the FastAPI routes (gateway/routes/items.py) and the fast path
(gateway/edge/hot.py) both call these, with the same parameter model (ItemListing). The item writes are in
gateway/operations/writes.py, beside the dispatch."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from gateway.http.pagination import CURSOR_PATTERN, MAX_SKIP, decode_cursor, next_cursor
from gateway.infrastructure import repository
from gateway.infrastructure.repository import UserRecord
from gateway.infrastructure.services import Services
from shared.contracts.fields import SearchText
from shared.models import ItemStatus


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
