"""What is said about a command that failed in the database: words for its caller, the whole error
for operators.

A caller sees the kind of failure and the constraint, column or table it concerns, never the
driver's message (PostgreSQL's DETAIL line holds row values), the SQL or its parameters (a batch
statement holds other users' data). Operators find the full error in the dead-letter header
`x-death-reason` and in the worker's log.
"""

import re
from typing import Any

# SQLSTATE (or its class) -> what it means, in words a caller can act on.
KINDS = {
    "23505": "a unique constraint",
    "23503": "a foreign key",
    "23514": "a check constraint",
    "23502": "a NOT NULL constraint",
    "42501": "a permission (the worker's role may not do this)",
    "P0001": "a rule of the database (a trigger or function raised an error)",
    "22": "a data rule (a value the database cannot store)",
    "23": "an integrity constraint",
}
DBAPI_KINDS = {  # drivers without SQLSTATEs (SQLite): the DB-API class says as much
    "IntegrityError": KINDS["23"],
    "DataError": KINDS["22"],
}
INBOX_KEY = "command_pkey"  # the inbox's primary key: command_id


def driver_error(error: BaseException) -> Any:
    """The driver's own exception under SQLAlchemy's wrappers (asyncpg's carries the sqlstate and names)."""
    seen = error
    while True:
        inner = getattr(seen, "orig", None) or seen.__cause__
        if inner is None or inner is seen:
            return seen
        seen = inner


def _sqlstate(error: BaseException) -> str:
    found = driver_error(error)
    return str(getattr(found, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", "") or "")


def for_caller(error: BaseException) -> str:
    """A sentence about the failure that reveals no data: the kind of rule and the object it names."""
    found = driver_error(error)
    sqlstate = _sqlstate(error)
    names = {
        attribute: getattr(found, attribute, None) for attribute in ("constraint_name", "column_name", "table_name")
    }
    return refusal(sqlstate, DBAPI_KINDS.get(type(found).__name__), **names) or (
        f"the command could not be applied ({_words(type(found).__name__)})"
    )


def refusal(
    sqlstate: str,
    kind: str | None = None,
    *,
    constraint_name: str | None = None,
    column_name: str | None = None,
    table_name: str | None = None,
) -> str | None:
    """The caller's sentence for a refusal with this SQLSTATE (None: not a kind we can name)."""
    kind = KINDS.get(sqlstate) or KINDS.get(sqlstate[:2]) or kind
    if kind is None:
        return None
    named = [
        f"{label} {value}"
        for label, value in (("constraint", constraint_name), ("column", column_name), ("table", table_name))
        if value
    ]
    return f"the database refused the command: it breaks {kind}" + (f" ({', '.join(named[:2])})" if named else "")


def for_operator(error: BaseException) -> str:
    """The driver's message and DETAIL line with the SQLSTATE: no SQL text, no bound parameters."""
    found = driver_error(error)
    detail = getattr(found, "detail", None)
    sqlstate = _sqlstate(error)
    text = f"{type(found).__name__}{f' [{sqlstate}]' if sqlstate else ''}: {found}"
    return (text + (f" DETAIL: {detail}" if detail else ""))[:2000]


def concurrent_duplicate(error: BaseException) -> bool:
    """Another consumer committed one of these commands meanwhile (its inbox key is taken): retrying
    finds its outcome and answers that, instead of failing the command."""
    found = driver_error(error)
    if _sqlstate(error) == "23505":
        return getattr(found, "constraint_name", None) == INBOX_KEY
    return "UNIQUE constraint failed: command.command_id" in str(found)  # SQLite


def _words(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Error")).lower() or "error"
