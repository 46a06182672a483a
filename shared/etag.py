"""An item's entity tag: a hash of everything the API shows, so any change gives a new one."""

import hashlib
from typing import Any

FIELDS = ("id", "title", "description", "status", "owner_id", "updated_at")


def item_etag(item: Any) -> str:
    """The strong ETag of an item row (gateway and worker compute it the same way)."""
    updated = getattr(item, "updated_at", None)
    parts = [str(getattr(item, name)) for name in FIELDS[:-1]] + [updated.isoformat() if updated else ""]
    return '"' + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32] + '"'


def matches(if_match: str | None, current: str) -> bool:
    """RFC 9110 If-Match: `*` or a list containing the current tag (weak tags never match)."""
    if if_match is None:
        return True
    candidates = [tag.strip() for tag in if_match.split(",")]
    return "*" in candidates or current in candidates
