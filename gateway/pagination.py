"""Opaque keyset cursors for the newest-first item listing: (created_at, id) of the last row."""

import base64
from datetime import datetime
from typing import Any

from gateway.problems import Problem


def encode_cursor(created_at: datetime, item_id: int) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, item_id = raw.rsplit("|", 1)
        return datetime.fromisoformat(created_at), int(item_id)
    except ValueError:
        raise Problem(422, "cursor: not a cursor this API gave out") from None


def next_cursor(rows: list[Any], limit: int) -> str | None:
    """A cursor after the last row of a full page; None when the listing is exhausted."""
    if len(rows) < limit or not rows:
        return None
    return encode_cursor(rows[-1].created_at, rows[-1].id)
