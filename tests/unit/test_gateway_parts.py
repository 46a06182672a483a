"""Small gateway pieces: tokens, Prefer: wait, JWT checks, settings that refuse placeholders."""

import asyncio
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import ValidationError

from gateway.http.request import _PREFER_WAIT, parse_token
from gateway.infrastructure.security import Passwords, Subject, create_access_token, password_stamp, subject_of
from shared.settings import Settings
from tests.support.embedded import HASH
from tests.support.polling import eventually


def test_consistency_tokens_are_lsns() -> None:
    assert parse_token("0/16B3748") == 0x16B3748
    assert parse_token("1/0") == 1 << 32
    assert parse_token("16/B374D848") > parse_token("15/FFFFFFFF")
    for bad in ("", "16B3748", "0/xyz", "0/123456789"):
        with pytest.raises(ValueError, match="consistency token"):
            parse_token(bad)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("wait=5", "5"), ("respond-async, wait=3", "3"), ("wait=2.5", "2.5"), ("wait=abc", None), ("", None)],
)
def test_prefer_wait_is_parsed_leniently(header: str, seconds: str | None) -> None:
    match = _PREFER_WAIT.search(header)
    assert (match.group(1) if match else None) == seconds


def settings(**overrides: object) -> Settings:
    values = {"secret_key": "x" * 40, "environment": "test", **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def test_tokens_round_trip_and_forgeries_fail() -> None:
    config = settings()
    token = create_access_token(42, HASH, config)
    assert subject_of(token, config) == Subject(42, password_stamp(HASH, config))
    now = datetime.now(UTC)
    base = {
        "sub": "42",
        "pwd": password_stamp(HASH, config),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
    }
    forged = [
        jwt.encode(base, None, algorithm="none"),
        jwt.encode(base, "y" * 40, algorithm="HS256"),
        jwt.encode(base | {"exp": now - timedelta(minutes=5)}, config.secret_key, algorithm="HS256"),
        jwt.encode(base | {"aud": "someone-else"}, config.secret_key, algorithm="HS256"),
        jwt.encode(base | {"iss": "someone-else"}, config.secret_key, algorithm="HS256"),
        jwt.encode({k: v for k, v in base.items() if k != "exp"}, config.secret_key, algorithm="HS256"),
        jwt.encode({k: v for k, v in base.items() if k != "pwd"}, config.secret_key, algorithm="HS256"),
        jwt.encode(base | {"sub": "99999999999"}, config.secret_key, algorithm="HS256"),
    ]
    for token in forged:
        with pytest.raises(jwt.InvalidTokenError):
            subject_of(token, config)


def test_a_placeholder_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        settings(secret_key="changethis", environment="production")
    assert settings(secret_key="changethis", environment="development")


def test_read_database_defaults_to_the_primary() -> None:
    config = settings(database_url="sqlite+aiosqlite:///./x.db", read_database_url="")
    assert config.read_database_url == "sqlite+aiosqlite:///./x.db"


def test_an_item_row_renders_as_item_read_does() -> None:
    """gateway/edge/hot.py answers GET /items/{id} from the row without the model: the bytes must agree."""
    from collections import namedtuple
    from datetime import UTC, datetime, timedelta, timezone

    from pydantic_core import to_json

    from gateway.http.schemas import ItemRead, ItemsPage, item_json
    from gateway.infrastructure.repository import ITEM_COLUMNS

    row_type = namedtuple("Row", [column.key for column in ITEM_COLUMNS])  # type: ignore[misc]  # noqa: PYI024
    for created in (datetime.now(UTC), datetime.now(timezone(timedelta(hours=2))), None):
        row = row_type(7, 'a "quoted" title \u00e9', None, "pending", 3, "Ann", created, None)
        assert item_json(row) == ItemRead.model_validate(row).model_dump_json().encode()
        page = {"data": [row._asdict()], "count": 1, "next_cursor": None}  # as gateway/edge/hot.py lists
        assert to_json(page) == ItemsPage.model_validate(page).model_dump_json().encode()


async def test_an_unknown_email_costs_a_hash_like_a_known_one() -> None:
    """Not timed: login verifies an unknown email (no stored hash) against a dummy argon2id hash of our
    own parameters, through the same MAX_HASHING limiter as a known email's wrong password."""
    passwords = Passwords(1)
    stored = await passwords.hash("the right password")

    async def waiting() -> int:
        return passwords._limiter.statistics().tasks_waiting

    async with passwords._limiter:  # the one hashing slot is taken: both logins must queue for it
        known = asyncio.create_task(passwords.verify(stored, "a wrong password"))
        unknown = asyncio.create_task(passwords.verify(None, "a wrong password"))
        await eventually(waiting, lambda n: n == 2)
        assert not known.done()
        assert not unknown.done()
    assert await known is False
    assert await unknown is False
    dummy = passwords._dummy_hash
    assert dummy is not None
    assert dummy.startswith("$argon2id$")
    assert not Passwords.needs_rehash(dummy)  # our parameters, so it costs what a stored hash costs
    assert await passwords.verify(None, "no-such-user-timing-equaliser") is False  # even the dummy's own password
