"""Field types shared by the wire contract and the HTTP schemas, with the seed's rules.

Every text type is constrained, and a constrained string refuses unpaired surrogates (pydantic:
`string_unicode`); its pattern refuses NUL, which PostgreSQL cannot store in text (SQLSTATE 22021).
The patterns use only escapes that pydantic's regex engine, Python's `re` and JSON Schema read alike,
so the OpenAPI document states exactly the rule the gateway and the worker apply.
"""

from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, EmailStr, Field, StringConstraints
from pydantic.json_schema import WithJsonSchema

from shared.models.item import ItemStatus

# What str.isspace() calls whitespace, spelled out: `\s` differs between regex engines.
SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TEXT = r"^[^\x00]*$"
VISIBLE_TEXT = rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"
ARGON2ID_PHC = r"^\$argon2id\$[\x21-\x7e]+$"
_TAG = r'(W/)?"[\x21\x23-\x7e]*"'
ENTITY_TAGS = rf"^(\*|{_TAG}([ \t]*,[ \t]*{_TAG})*)$"

# For the document only (email-validator decides): no quoted local part, no bracketed address, a
# dot in the domain, and no special-use top-level name (`test`, `local`, …), in any case.
_SPECIAL_USE = "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in n) for n in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_SCHEMA = {
    "type": "string",
    "format": "email",
    "maxLength": 254,
    "pattern": rf'^[^\s@"]+@(?![^@]*\.(?:{_SPECIAL_USE})\.?$)[^\s@\[\]]+\.[^\s@\[\]]+$',
}

# The words a caller reads when a value does not match one of these patterns.
REASONS = {
    TEXT: "must not contain NUL (\\u0000)",
    VISIBLE_TEXT: "must not be blank, nor contain NUL (\\u0000)",
    ARGON2ID_PHC: "must be an argon2id PHC string; passwords never travel in plaintext",
    ENTITY_TAGS: 'must be * or a list of entity tags such as "3f2a…"',
}


def readable(error: Any) -> str:
    """What one pydantic error says, in our words for the shared patterns (never the regex itself)."""
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "string_pattern_mismatch" and pattern in REASONS:
        return REASONS[pattern]
    return str(error["msg"])


def _lower(value: str) -> str:
    return value.lower()


Title = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=VISIBLE_TEXT)]
Description = Annotated[str, StringConstraints(max_length=10_000, pattern=TEXT)]
FullName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=VISIBLE_TEXT)]
Email = Annotated[
    EmailStr, StringConstraints(max_length=254), AfterValidator(_lower), WithJsonSchema(EMAIL_SCHEMA)
]  # email-validator refuses NUL and lone surrogates too
Password = Annotated[str, StringConstraints(max_length=128, pattern=TEXT)]  # hashed, never stored: UTF-8 all the same
PasswordHash = Annotated[str, StringConstraints(min_length=20, max_length=255, pattern=ARGON2ID_PHC)]
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TEXT)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]  # PostgreSQL integer keys
ETag = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=ENTITY_TAGS)]
Status = ItemStatus
