"""The message schemas of docs/asyncapi.yaml are the code's contracts: each accepted version of each
command body, the outcome, every event; the headers are those the code reads and writes."""

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from shared.contracts.commands import CommandName
from shared.contracts.events import EVENTS, EVENTS_EXCHANGE_NAME, EventName
from shared.contracts.headers import HEADER_FINGERPRINT, HEADER_IDEMPOTENCY_KEY, HEADER_REQUEST_ID
from shared.contracts.messages import command_message
from shared.contracts.outcomes import Outcome
from shared.contracts.versions import ACCEPTED_SCHEMA_VERSIONS, BODIES
from shared.event_log import EVENT_LOG_NAME, STREAM_OFFSET
from shared.topology import COMMANDS_EXCHANGE_NAME, DEAD_LETTER_QUEUE_NAME
from worker.catalogue import CATALOGUE
from worker.outbound import event_message
from worker.outbox import OutboxRow

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))


def inline(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every `$ref` replaced by what it names (no model here refers to itself)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline(definitions[node["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: inline(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [inline(value, definitions) for value in node]
    return node


def published(schema: dict[str, Any]) -> Any:
    return inline(schema, DOC["components"]["schemas"])


def of_code(model: type[BaseModel], mode: JsonSchemaMode) -> Any:
    schema = model.model_json_schema(mode=mode)
    return inline(schema, schema.get("$defs", {}))


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    """A message, following a `#/components/messages/…` reference."""
    if "$ref" in node:
        return dict(DOC["components"]["messages"][node["$ref"].rsplit("/", 1)[-1]])
    return node


def channel_at(address: str) -> dict[str, Any]:
    [channel] = [c for c in DOC["channels"].values() if c["address"] == address]
    return dict(channel)


@pytest.mark.parametrize("name", list(CommandName))
def test_each_accepted_version_of_each_command_has_its_body(name: CommandName) -> None:
    channel = channel_at(name.value)
    assert channel["bindings"]["amqp"]["exchange"]["name"] == COMMANDS_EXCHANGE_NAME
    by_version = {
        int(message["headers"]["properties"]["x-schema-version"]["enum"][1]): message
        for message in map(resolved, channel["messages"].values())
    }
    assert set(by_version) == set(ACCEPTED_SCHEMA_VERSIONS) == set(BODIES[name])
    assert CATALOGUE[name].bodies == BODIES[name]  # the worker reads what the document promises
    for version, body in BODIES[name].items():
        assert published(by_version[version]["payload"]) == of_code(body, "validation"), (name, version)
        assert by_version[version]["bindings"]["amqp"]["x-properties"]["properties"]["delivery_mode"]["const"] == 2


@pytest.mark.parametrize("name", list(EventName))
def test_each_event_has_its_payload_and_is_emitted_by_a_command(name: EventName) -> None:
    channel = channel_at(name.value)
    assert channel["bindings"]["amqp"]["exchange"]["name"] == EVENTS_EXCHANGE_NAME
    [message] = map(resolved, channel["messages"].values())
    assert published(message["payload"]) == of_code(EVENTS[name], "serialization")
    assert name in {command.event for command in CATALOGUE.values()}


def test_the_outcome_on_both_reply_queues_is_the_code_s() -> None:
    for channel in (DOC["channels"]["replies.service"], DOC["channels"]["replies.gateway"]):
        [message] = map(resolved, channel["messages"].values())
        assert published(message["payload"]) == of_code(Outcome, "serialization")


def test_the_channels_are_what_exists_and_nothing_else() -> None:
    addresses = {channel["address"] for channel in DOC["channels"].values()}
    expected = {name.value for name in CommandName} | {name.value for name in EventName}
    expected |= {"{user}.replies.{name}", "opengovfood.replies.{process}", DEAD_LETTER_QUEUE_NAME, EVENT_LOG_NAME}
    assert addresses == expected


def test_the_event_log_carries_every_event_with_its_offset_and_says_where_to_start() -> None:
    log = channel_at(EVENT_LOG_NAME)
    queue = log["bindings"]["amqp"]["queue"]
    assert queue["x-arguments"] == {"x-queue-type": "stream"}
    [source] = queue["x-bound-from"]
    assert (source["bindingKey"], source["exchange"]["name"]) == ("#", EVENTS_EXCHANGE_NAME)
    assert STREAM_OFFSET in queue["x-consumer-arguments"]
    for name in EventName:
        message = log["messages"][name.value]
        assert published(message["payload"]) == of_code(EVENTS[name], "serialization")
        assert STREAM_OFFSET in message["headers"]["required"]


def test_event_headers_and_properties_are_what_the_worker_writes() -> None:
    message = event_message(OutboxRow(1, "item.created", uuid.uuid4(), str(uuid.uuid4()), None, b"{}"))
    [event] = map(resolved, DOC["channels"]["event.item.created"]["messages"].values())
    headers = event["headers"]
    assert set(message.headers) == set(headers["properties"]) == set(headers["required"])
    properties = event["bindings"]["amqp"]["x-properties"]
    written = {"message_id": message.message_id, "correlation_id": message.correlation_id,
               "content_type": message.content_type, "delivery_mode": message.delivery_mode}  # fmt: skip
    assert set(properties["required"]) == {key for key, value in written.items() if value is not None}
    assert (written["content_type"], written["delivery_mode"]) == ("application/json", 2)
    assert message.headers["x-schema-version"] == headers["properties"]["x-schema-version"]["const"]


def test_command_headers_are_those_publishers_write_and_the_worker_reads() -> None:
    message = command_message(
        b"{}", command_id=uuid.uuid4(), owner_key="1", user_id="u", actor="anonymous", reply_to="u.replies.x",
        headers={HEADER_REQUEST_ID: "r", HEADER_FINGERPRINT: "f", HEADER_IDEMPOTENCY_KEY: str(uuid.uuid4())},
    )  # fmt: skip
    for name in CommandName:
        for message_doc in map(resolved, channel_at(name.value)["messages"].values()):
            assert set(message.headers) == set(message_doc["headers"]["properties"])
            properties = message_doc["bindings"]["amqp"]["x-properties"]["properties"]
            assert {"message_id", "content_type", "delivery_mode", "user_id", "reply_to"} <= set(properties)
