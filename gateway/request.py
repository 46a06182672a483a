"""What the gateway reads off a request before any rule of a route: ids in a path, `Prefer: wait`.

Ids in a path: ASCII digits only, and no more of them than int() reads (Python stops at 4,300).

Starlette's `{x:int}` takes any run of digits and calls int() on it: past 4,300 digits that raises,
a 500. A path whose id is no number of ours is no route of ours: 404. `str.isdigit()` is no test
either: `²` and `١` are digits to it (and int("١") is 1).
"""

import re
import sys

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
