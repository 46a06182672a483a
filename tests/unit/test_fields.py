"""The shared field types refuse what PostgreSQL cannot store, with words a caller can read."""

import re
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.http.schemas import ItemCreate, LoginForm, PasswordChange, UserCreate, UserUpdateMe
from shared.contracts import commands, fields, imports, versions
from shared.contracts.base import CommandBody
from shared.contracts.fields import REASONS

TEXT_TYPES = {
    "Title": fields.Title,
    "Description": fields.Description,
    "FullName": fields.FullName,
    "Email": fields.Email,
    "Password": fields.Password,
    "PasswordHash": fields.PasswordHash,
    "SearchText": fields.SearchText,
    "ETag": fields.ETag,
}
VALID = {
    "Title": "Buy flour",
    "Description": "2 kg",
    "FullName": "Ada",
    "Email": "ada@example.org",
    "Password": "correct horse",
    "PasswordHash": "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    "SearchText": "flour",
    "ETag": '"0123456789abcdef0123456789abcdef"',
}


def _with(valid: str, hostile: str) -> str:
    """The valid value with `hostile` in its middle (inside the quotes of an ETag, after a PHC prefix)."""
    cut = len(valid) // 2
    return valid[:cut] + hostile + valid[cut:]


@pytest.mark.parametrize("name", TEXT_TYPES)
@pytest.mark.parametrize("hostile", ["\x00", "\ud800"])
def test_every_text_type_refuses_nul_and_lone_surrogates(name: str, hostile: str) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(TEXT_TYPES[name])
    assert adapter.validate_python(VALID[name])
    with pytest.raises(ValidationError):
        adapter.validate_python(_with(VALID[name], hostile))


def _text_fields(model: type[BaseModel]) -> Iterator[tuple[str, Any]]:
    """(name, metadata) of every str field, optional or not."""
    for name, field in model.model_fields.items():
        options = get_args(field.annotation) if get_origin(field.annotation) in (Union, UnionType) else ()
        for option in options or (field.annotation,):
            if option is str:
                yield name, field.metadata
            elif get_origin(option) is Annotated and get_args(option)[0] is str:
                yield name, get_args(option)[1:]


def test_every_text_field_of_the_wire_contract_and_the_http_bodies_refuses_nul() -> None:
    """A str field without one of the shared patterns would let NUL through to PostgreSQL."""
    bodies = [
        body
        for module in (commands, imports, versions)
        for body in vars(module).values()
        if isinstance(body, type) and issubclass(body, CommandBody) and body is not CommandBody
    ]
    models = [*bodies, UserCreate, UserUpdateMe, PasswordChange, LoginForm, ItemCreate]
    checked = 0
    for model in models:
        for name, metadata in _text_fields(model):
            patterns = [item.pattern for item in metadata if getattr(item, "pattern", None)]
            assert patterns, f"{model.__name__}.{name} takes any text"
            assert all(re.search(pattern, "\x00") is None for pattern in patterns)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (fields.Title, "   ", REASONS[fields.VISIBLE_TEXT]),
        (fields.Title, "a\x00", REASONS[fields.VISIBLE_TEXT]),
        (fields.Description, "a\x00", REASONS[fields.TEXT]),
        (fields.PasswordHash, "plaintext password here", REASONS[fields.ARGON2ID_PHC]),
        (fields.ETag, "not a tag", REASONS[fields.ENTITY_TAGS]),
    ],
)
def test_a_pattern_mismatch_has_words_for_the_caller(kind: Any, value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(kind).validate_python(value)
    error = raised.value.errors()[0]
    assert error["type"] == "string_pattern_mismatch"
    assert REASONS[error["ctx"]["pattern"]] == reason


@pytest.mark.parametrize("value", [0, -1, 2**31, 99_999_999_999])
def test_ids_are_postgresql_integers(value: int) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(fields.Id).validate_python(value)
    assert TypeAdapter(fields.Id).validate_python(2**31 - 1) == 2**31 - 1
