"""What the gateway reads off a request before any rule of a route: ids in a path, `Prefer: wait`,
the consistency token; and what one request's reads noted (gateway/infrastructure/consistency.py notes, edge.py shows).

Ids in a path: ASCII digits only, and no more of them than int() reads (Python stops at 4,300).

Starlette's `{x:int}` takes any run of digits and calls int() on it: past 4,300 digits that raises,
a 500. A path whose id is no number of ours is no route of ours: 404. `str.isdigit()` is no test
either: `²` and `١` are digits to it (and int("١") is 1).
"""

import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.convertors import Convertor, register_url_convertor

MAX_DIGITS = sys.int_info.default_max_str_digits
DIGITS = f"[0-9]{{1,{MAX_DIGITS}}}"  # [0-9] is ASCII in `re`, unlike \d
_ID = re.compile(DIGITS)


class IdConvertor(Convertor[int]):
    """`{item_id:id}`: the route matches only what `path_id` reads (range checks stay the route's: 422)."""

    regex = DIGITS

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", IdConvertor())


def path_id(segment: str) -> int | None:
    """The number a path segment names as the routes read it; None when no route matches it (404)."""
    return int(segment) if _ID.fullmatch(segment) else None


# Any HTTP field value (RFC 9110 §5.5): only `wait` is read, anything else is ignored, never refused.
FIELD_VALUE = r"^[\t\x20-\x7e\x80-\xff]*$"
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)


def prefer_wait(value: str | None, cap: float) -> float | None:
    """Seconds to wait for the outcome (RFC 7240 `Prefer: wait=N`, capped); a bad value is ignored."""
    match = _PREFER_WAIT.search(value or "")
    return min(float(match.group(1)), cap) if match else None


ITEM_ID = "/{item_id:id}"
USER_ID = "/{user_id:id}"

# The consistency token: a PostgreSQL WAL position (an LSN).
TOKEN_HEADER = "X-Consistency-Token"
TOKEN_PATTERN = r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
_LSN = re.compile(TOKEN_PATTERN)


def parse_token(value: str) -> int:
    """A PostgreSQL LSN ("16/B374D848") as a number; raises ValueError if it is not one."""
    match = _LSN.match(value.strip())
    if not match:
        raise ValueError("a consistency token looks like 0/16B3748")
    high, low = value.strip().split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class RequestReads:
    """One request's reads: which databases answered, and when its one wait for the replica ends."""

    served_by: list[str] = field(default_factory=list)
    wait_ends: float | None = None


_request: ContextVar[RequestReads | None] = ContextVar("request_reads", default=None)


def begin_reads() -> RequestReads:
    """A new request: its reads are noted here (gateway/edge/middleware.py shows which database answered)."""
    request = RequestReads()
    _request.set(request)
    return request


def current_reads() -> RequestReads | None:
    """This request's reads (None outside a request)."""
    return _request.get()


def note_served_by(database: str) -> None:
    """Note which database answered one of this request's reads (X-Served-By)."""
    request = _request.get()
    if request is not None:
        request.served_by.append(database)
