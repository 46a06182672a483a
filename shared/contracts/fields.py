"""Field types shared by the wire contract and the HTTP schemas, with the seed's rules."""

from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

from shared.models.item import ItemStatus


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _lower(value: str) -> str:
    return value.lower()


def _argon2id_hash(value: str) -> str:
    if not value.startswith("$argon2id$"):
        raise ValueError("must be an argon2id PHC string; passwords never travel in plaintext")
    return value


Title = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_not_blank)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
FullName = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_not_blank)]
Email = Annotated[EmailStr, StringConstraints(max_length=255), AfterValidator(_lower)]
PasswordHash = Annotated[str, StringConstraints(min_length=20, max_length=255), AfterValidator(_argon2id_hash)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
ETag = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Status = ItemStatus
