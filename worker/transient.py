"""Which failures are worth retrying: the database is down, restarting, or asked us to retry."""

import asyncio

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes: 08 connection exception, 40 transaction rollback (serialization failure,
# deadlock), 53 insufficient resources, 57P operator intervention (shutdown), 58 system error.
TRANSIENT_SQLSTATES = ("08", "40", "53", "57P", "58")


def is_transient(error: BaseException) -> bool:
    """True when the same work may succeed later without any change to it."""
    if isinstance(error, OSError | asyncio.TimeoutError | PoolTimeoutError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if sqlstate and str(sqlstate).startswith(TRANSIENT_SQLSTATES):
            return True
        return "database is locked" in str(error.orig)
    cause = error.__cause__
    return cause is not None and is_transient(cause)
