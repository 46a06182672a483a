"""Opaque keyset cursors for the newest-first item listing: (created_at, id) of the last row; offsets."""

import base64
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateway.http.problems import Problem
from shared.contracts.fields import Id

# An offset costs a scan of every row it skips; past this, walk with the cursor instead.
MAX_SKIP = 10_000
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
_ID = TypeAdapter(Id)


def encode_cursor(created_at: datetime, item_id: int) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor names; 422 for anything this API did not give out (ids past the Id bounds too)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, item_id = raw.rsplit("|", 1)
        after = datetime.fromisoformat(created_at)
        if after.tzinfo is None:
            raise ValueError("a cursor's time has a zone")
        return after, _ID.validate_python(int(item_id))
    except (ValueError, ValidationError):
        raise Problem(422, "cursor: not a cursor this API gave out") from None


def next_cursor(rows: list[Any], limit: int) -> str | None:
    """A cursor after the last row of a full page; None when the listing is exhausted."""
    if len(rows) < limit or not rows:
        return None
    return encode_cursor(rows[-1].created_at, rows[-1].id)
