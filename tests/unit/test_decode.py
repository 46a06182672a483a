"""Decoding a delivered message: every way it can be unusable has a readable reason."""

import json
import uuid

import pytest

from shared.contracts.commands import CreateItem
from shared.contracts.headers import Actor
from worker.decode import decode
from worker.envelope import PoisonMessage

GATEWAY = "gateway-user"


def _decode(**overrides: object):  # type: ignore[no-untyped-def]
    message = {
        "routing_key": "item.create",
        "message_id": str(uuid.uuid4()),
        "headers": {"x-actor": "user:7", "x-schema-version": "1"},
        "body": json.dumps({"owner_id": 7, "title": "t"}).encode(),
        "bus_user": GATEWAY,
        "reply_to": None,
        "gateway_bus_user": GATEWAY,
    }
    return decode(**{**message, **overrides})  # type: ignore[arg-type]


def test_a_valid_command() -> None:
    envelope = _decode()
    assert envelope.body == CreateItem(owner_id=7, title="t")
    assert envelope.actor == Actor.user(7)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"message_id": "not-a-uuid"}, "message_id must be a UUID"),
        ({"message_id": None}, "message_id must be a UUID"),
        ({"routing_key": "item.explode"}, "unknown command"),
        ({"body": b"{nope"}, "invalid item.create body"),
        ({"body": json.dumps({"owner_id": 7, "title": ""}).encode()}, "title"),
        ({"body": json.dumps({"owner_id": 7, "title": "t", "extra": 1}).encode()}, "extra"),
        ({"headers": {"x-actor": "user:7", "x-schema-version": "99"}}, "x-schema-version"),
        ({"headers": {"x-actor": "root", "x-schema-version": "1"}}, "x-actor"),
    ],
)
def test_unusable_messages_say_why(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        _decode(**overrides)


def test_only_the_gateway_may_assert_a_user_actor() -> None:
    envelope = _decode(bus_user="billing-service")
    assert envelope.actor == Actor("service", service="billing-service")


def test_a_password_must_travel_as_an_argon2id_hash() -> None:
    body = json.dumps({"email": "a@b.io", "hashed_password": "plaintext-password-123", "full_name": "A"})
    with pytest.raises(PoisonMessage, match="argon2id"):
        _decode(routing_key="user.create", body=body.encode(), headers={"x-actor": "anonymous"})


def test_a_service_whose_name_the_inbox_cannot_hold_is_refused_with_the_reason() -> None:
    with pytest.raises(PoisonMessage, match="bus user name is longer than 72 characters") as refused:
        _decode(bus_user="s" * 73)
    assert refused.value.command_id is not None  # its outcome is recorded, the actor cut to the column
    assert str(_decode(bus_user="s" * 72).actor) == "service:" + "s" * 72


def test_a_command_with_a_priority_is_refused_so_it_cannot_overtake() -> None:
    with pytest.raises(PoisonMessage, match="priority property is not allowed"):
        _decode(priority=5)
    assert _decode(priority=0).actor == Actor.user(7)  # 0 is what a client without priorities sends
