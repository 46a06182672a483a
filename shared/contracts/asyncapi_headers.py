"""What travels beside each message body, as JSON schemas for the AsyncAPI document: the headers
table, and the AMQP properties (asyncapi.py puts those in the message bindings).

Each schema states what the worker reads or writes: worker/decode.py and worker/envelope.py for
commands, worker/outbound.py for events, outcomes and dead letters.
"""

from typing import Any

from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.headers import (
    HEADER_ACTOR,
    HEADER_COMMAND_ID,
    HEADER_DEATH_REASON,
    HEADER_FINGERPRINT,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_ORIGINAL_USER_ID,
    HEADER_OWNER,
    HEADER_REQUEST_ID,
    HEADER_SCHEMA_VERSION,
)
from shared.contracts.versions import ACCEPTED_SCHEMA_VERSIONS

JSON = {"type": "string", "const": "application/json"}
UUID = {"type": "string", "format": "uuid"}


def _object(properties: dict[str, Any], required: list[str], *, others: bool = True, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": others} | extra


def _version(version: int, *, required: bool) -> dict[str, Any]:
    accepted = " or ".join(str(v) for v in sorted(ACCEPTED_SCHEMA_VERSIONS))
    note = f"the schema version of the body: {version}. The worker accepts {accepted}; any other is dead-lettered"
    absent = f"; absent means {SCHEMA_VERSION}" if not required else ""
    return {"description": note + absent + " (a string or an integer)", "enum": [str(version), version]}


def command(name: CommandName, version: int) -> dict[str, Any]:
    """The headers of a command of this name in this schema version."""
    owner = "the e-mail of the user to create" if name == CommandName.USER_CREATE else "the owner's user id, in decimal"
    properties = {
        HEADER_SCHEMA_VERSION: _version(version, required=version != SCHEMA_VERSION),
        HEADER_OWNER: {
            "type": "string",
            "minLength": 1,
            "description": f"the partition key: {owner}. Commands of one owner are applied in the order published",
        },
        HEADER_ACTOR: {
            "type": "string",
            "pattern": "^(user:[1-9][0-9]{0,9}|anonymous)$",
            "description": "honoured only from the gateway's bus user (GATEWAY_BUS_USER), whose commands must carry "
            "it; any other publisher acts as `service:<its user>`, within its grant",
        },
        HEADER_REQUEST_ID: {
            "type": "string",
            "description": "optional trace id: its first 64 characters appear on the worker's log line and as the "
            "`request_id` of the command's event",
        },
        HEADER_FINGERPRINT: {
            "type": "string",
            "description": "optional: what the command id stands for (e.g. an Idempotency-Key's request). The first "
            "64 characters are kept; a later command with the same id and another fingerprint is rejected "
            "`idempotency_key_reused`",
        },
        HEADER_IDEMPOTENCY_KEY: UUID
        | {
            "description": "optional: an idempotency key's id. The first command carrying it (per actor) takes it; "
            "another command id with the same key is rejected `idempotency_key_reused`. Not a UUID: dead-lettered",
        },
    }
    required = [HEADER_OWNER] + ([HEADER_SCHEMA_VERSION] if version != SCHEMA_VERSION else [])
    return _object(properties, required, description="Other headers are ignored.")


EVENT = _object(
    {
        HEADER_SCHEMA_VERSION: {"type": "string", "const": str(SCHEMA_VERSION)},
        HEADER_COMMAND_ID: UUID | {"description": "the command that caused the event"},
        HEADER_REQUEST_ID: {"type": "string", "description": "the HTTP request behind it, or empty"},
    },
    [HEADER_SCHEMA_VERSION, HEADER_COMMAND_ID, HEADER_REQUEST_ID],
    others=False,
)
OUTCOME = _object({}, [], others=False, description="An outcome carries no headers: see its AMQP properties.")
DEAD_LETTER = _object(
    {
        HEADER_DEATH_REASON: {"type": "string", "maxLength": 2000, "description": "why the worker dead-lettered it"},
        HEADER_ORIGINAL_ROUTING_KEY: {"type": "string", "description": "the routing key it was published with"},
        HEADER_ORIGINAL_USER_ID: {"type": "string", "description": "the user_id it was published with"},
        "x-death": {"type": "array", "description": "set by RabbitMQ instead when the broker dead-lettered it"},
    },
    [],
    description="The command's own headers, and these.",
)

COMMAND_PROPERTIES = _object(
    {
        "message_id": UUID | {"description": "the command id: one effect per id (redeliveries, retries, replays)"},
        "content_type": JSON,
        "delivery_mode": {"const": 2, "description": "persistent"},
        "user_id": {
            "type": "string",
            "description": "your RabbitMQ user: the broker refuses any other, and the worker authorizes by it",
        },
        "reply_to": {
            "type": "string",
            "description": "optional: your reply queue, `<user_id>.replies.<anything>`; the outcome goes there "
            "(any other queue gets no reply)",
        },
        "correlation_id": {"type": "string", "description": "optional; not used by the worker"},
        "timestamp": {"type": "integer", "description": "optional, seconds: the worker's latency metric uses it"},
        "priority": {
            "not": {},
            "description": "never set: on RabbitMQ 4 it would overtake the owner's earlier commands",
        },
    },
    ["message_id", "content_type", "delivery_mode", "user_id"],
)
EVENT_PROPERTIES = _object(
    {
        "message_id": UUID | {"description": "the event_id"},
        "correlation_id": UUID | {"description": "the command id"},
        "content_type": JSON,
        "delivery_mode": {"const": 2, "description": "persistent"},
    },
    ["message_id", "correlation_id", "content_type", "delivery_mode"],
)
OUTCOME_PROPERTIES = _object(
    {
        "correlation_id": UUID | {"description": "the command id"},
        "content_type": JSON,
        "delivery_mode": {"description": "not set: transient (the inbox keeps every outcome)"},
    },
    ["correlation_id", "content_type"],
)
DEAD_LETTER_PROPERTIES = _object(
    {
        "message_id": {"type": "string", "description": "as published"},
        "correlation_id": {"type": "string", "description": "as published"},
        "content_type": {"type": "string", "description": "as published"},
        "reply_to": {"type": "string", "description": "as published"},
        "timestamp": {"type": "integer", "description": "as published"},
        "delivery_mode": {"const": 2, "description": "persistent"},
    },
    ["delivery_mode"],
)
