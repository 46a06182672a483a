"""The bus contract as an AsyncAPI 3.0.0 document, built from the code's own definitions.

`python -m shared.contracts.asyncapi [FILE]` writes it (`make docs`: docs/asyncapi.yaml, which the gateway
serves). Commands and their body per accepted schema version come from shared/contracts/versions.py, events
from shared/contracts/events.py, the outcome from shared/contracts/outcomes.py, exchanges, queues,
their arguments and headers from shared/topology.py. The document describes OpenGov-Food: it
receives commands, and sends events, outcomes and dead letters. What AMQP bindings 0.3.0 cannot say
travels in extensions: `x-arguments` of exchanges and queues (`x-arguments-on-rabbitmq-4` where 4.x
differs), `x-routes` (the broker's bindings from an exchange), `x-bound-from` (into a queue) and
`x-properties` (a schema of the AMQP properties).
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.contracts import asyncapi_headers as headers
from shared.contracts import asyncapi_log as event_log
from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.events import EVENTS, EVENTS_EXCHANGE_NAME, EventName
from shared.contracts.imports import MAX_CHUNK_BYTES, MAX_CHUNK_ROWS, MAX_COMMAND_BYTES
from shared.contracts.outcomes import Outcome
from shared.contracts.versions import BODIES
from shared.event_log import EVENT_LOG_BINDING_KEY
from shared.settings import Settings
from shared.topology import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE_NAME,
    EVENT_LOG,
    EVENTS_EXCHANGE,
    GATEWAY_REPLY_PREFIX,
    PARTITION_QUEUE_PREFIX,
    PARTITION_WEIGHT,
    PARTITIONS_EXCHANGE,
    Exchange,
    Queue,
    dead_letter_queue,
    gateway_reply_queue,
    partition_queue,
)

AMQP = "0.3.0"
VHOST = "opengovfood"  # as `opengovfood bus provision` creates it
PARTITIONS = Settings.model_fields["command_partitions"].default  # COMMAND_PARTITIONS
# Queue arguments depend on the broker: as declared on RabbitMQ 3.x, and (where they differ) on 4.x.
RABBITMQ_3, RABBITMQ_4 = "3.10.0", "4.0.0"
SECURITY = [{"$ref": "#/components/securitySchemes/busUser"}]
OUTCOME = {"$ref": "#/components/messages/outcome"}
INFO = {
    "title": "OpenGov-Food commands and events",
    "version": f"{SCHEMA_VERSION}.0.0",
    "description": (
        "The message contract of OpenGov-Food on RabbitMQ. Other services publish commands to the topic "
        f"exchange `{COMMANDS_EXCHANGE.name}` (docs/publishing.md), get each outcome on a reply queue of their own, "
        f"and follow events on the topic exchange `{EVENTS_EXCHANGE_NAME}`, or replay them from the event log "
        f"`{EVENT_LOG.name}` (docs/consuming.md). Bodies are JSON; "
        f"the worker accepts the current `x-schema-version` ({SCHEMA_VERSION}) and the previous one."
    ),
}
BUS_USER = {
    "type": "userPassword",
    "description": (
        "One RabbitMQ user per service, provisioned with its grant (SERVICE_GRANTS). Every command carries the "
        "`user_id` property: the broker refuses a message whose user_id is not the connection's user, and the "
        "worker authorizes each command by it (command types and owners granted)."
    ),
}


def _schemas() -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """JSON schemas of every body (validation) and of what the worker writes (serialization)."""
    bodies = dict.fromkeys(body for versions in BODIES.values() for body in versions.values())
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(body, "validation") for body in bodies]
    models += [(event, "serialization") for event in EVENTS.values()] + [(Outcome, "serialization")]
    refs, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    return {model.__name__: ref for (model, _), ref in refs.items()}, definitions["$defs"]


def _exchange(exchange: Exchange) -> dict[str, Any]:
    declared = {"name": exchange.name, "type": exchange.type, "durable": exchange.durable, "autoDelete": False}
    return declared | {"vhost": VHOST, "x-arguments": exchange.arguments}


def _queue(queue: Queue, name: str | None = None, on_4: Queue | None = None) -> dict[str, Any]:
    declared = {"name": name or queue.name, "durable": queue.durable, "exclusive": queue.exclusive}
    declared |= {"autoDelete": queue.auto_delete, "vhost": VHOST, "x-arguments": queue.arguments}
    if on_4 is not None and on_4.arguments != queue.arguments:
        declared["x-arguments-on-rabbitmq-4"] = on_4.arguments
    return declared


def _commands_route() -> list[dict[str, Any]]:
    """Where the broker takes a command: the consistent-hash exchange, then one partition queue by owner."""
    versions = (partition_queue(0, RABBITMQ_3), partition_queue(0, RABBITMQ_4))
    queue = _queue(versions[0], name=f"{PARTITION_QUEUE_PREFIX}{{partition}}", on_4=versions[1])
    queue["x-count"] = PARTITIONS  # p0 … p{PARTITIONS - 1}
    hashed = _exchange(PARTITIONS_EXCHANGE) | {"x-routes": [{"bindingKey": PARTITION_WEIGHT, "queue": queue}]}
    return [{"bindingKey": "#", "exchange": hashed}]


def _routing_key_binding(exchange: Exchange, routes: list[dict[str, Any]]) -> dict[str, Any]:
    declared = _exchange(exchange) | {"x-routes": routes}
    return {"amqp": {"is": "routingKey", "exchange": declared, "bindingVersion": AMQP}}


def _queue_binding(queue: dict[str, Any]) -> dict[str, Any]:
    return {"amqp": {"is": "queue", "queue": queue, "bindingVersion": AMQP}}


def _message(
    name: str, summary: str, payload: dict[str, Any], header_schema: dict[str, Any], properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "summary": summary,
        "contentType": "application/json",
        "headers": header_schema,
        "payload": payload,
        "bindings": {"amqp": {"bindingVersion": AMQP, "x-properties": properties}},
    }


def _command_note(name: CommandName) -> str:
    note = (
        f"Publish `{name.value}` to the exchange `{COMMANDS_EXCHANGE.name}` (docs/publishing.md). "
        f"A body larger than {MAX_COMMAND_BYTES} bytes is dead-lettered."
    )
    if name != CommandName.ITEM_IMPORT:
        return note
    return note + (
        f" A chunk holds at most {MAX_CHUNK_ROWS} rows, of one owner, and at most {MAX_CHUNK_BYTES} bytes of rows "
        "(their JSON joined by commas). Each chunk's outcome carries `import_progress`; the one whose `state` is "
        "`completed` ends the import."
    )


def _command_channel(name: CommandName, refs: dict[str, dict[str, str]]) -> dict[str, Any]:
    messages = {
        f"{name.value}.v{version}": _message(
            f"{name.value}.v{version}",
            f"`{name.value}`, schema version {version}",
            refs[body.__name__],
            headers.command(name, version),
            headers.COMMAND_PROPERTIES,
        )
        for version, body in sorted(BODIES[name].items(), reverse=True)
    }
    return {
        "address": name.value,
        "title": f"command {name.value}",
        "description": _command_note(name),
        "messages": messages,
        "bindings": _routing_key_binding(COMMANDS_EXCHANGE, _commands_route()),
    }


def _event_channel(name: EventName, refs: dict[str, dict[str, str]]) -> dict[str, Any]:
    model = EVENTS[name]
    message = _message(
        name.value, f"`{name.value}`, after the commit of its command", refs[model.__name__], headers.EVENT,
        headers.EVENT_PROPERTIES,
    ) | {"correlationId": {"location": "$message.payload#/command_id"}}  # fmt: skip
    return {
        "address": name.value,
        "title": f"event {name.value}",
        "description": (
            f"Bind a queue of yours to the exchange `{EVENTS_EXCHANGE_NAME}` with this routing key (or a pattern): "
            "at least once, in order per owner; see docs/consuming.md."
        ),
        "messages": {name.value: message},
        "bindings": _routing_key_binding(EVENTS_EXCHANGE, []),
    }


def _event_log_channel(refs: dict[str, dict[str, str]]) -> dict[str, Any]:
    bound_from = [{"bindingKey": EVENT_LOG_BINDING_KEY, "exchange": _exchange(EVENTS_EXCHANGE)}]
    queue = _queue(EVENT_LOG) | {"x-bound-from": bound_from, "x-policy": event_log.retention()}
    queue |= {"x-consumer-arguments": event_log.CONSUMER_ARGUMENTS, "x-consumer": event_log.CONSUMER}
    messages = {
        name.value: _message(name.value, f"`{name.value}`, as the log keeps it", refs[EVENTS[name].__name__],
                             event_log.HEADERS, headers.EVENT_PROPERTIES)
        for name in EventName
    }  # fmt: skip
    return {
        "address": EVENT_LOG.name,
        "title": "the event log",
        "description": event_log.DESCRIPTION,
        "messages": messages,
        "bindings": _queue_binding(queue),
    }


def _outcome(refs: dict[str, dict[str, str]]) -> dict[str, Any]:
    return _message(
        "outcome", "The outcome of one command", refs[Outcome.__name__], headers.OUTCOME, headers.OUTCOME_PROPERTIES
    ) | {"correlationId": {"location": "$message.payload#/command_id"}}


def _reply_channels() -> dict[str, Any]:
    gateway = _queue(gateway_reply_queue(f"{GATEWAY_REPLY_PREFIX}{{process}}"))
    service = {"name": "{user}.replies.{name}", "vhost": VHOST}
    return {
        "replies.service": {
            "address": service["name"],
            "title": "a service's reply queue",
            "description": (
                "Outcomes of the commands a service published with `reply_to` naming this queue. The worker "
                "answers only to `<the command's user_id>.replies.<anything>`, a queue that bus user may declare "
                "and read (any other reply_to gets no reply). Its durability is the service's choice."
            ),
            "parameters": {
                "user": {"description": "your RabbitMQ user: the command's validated `user_id`"},
                "name": {"description": "anything, not empty"},
            },
            "messages": {"outcome": OUTCOME},
            "bindings": _queue_binding(service),
        },
        "replies.gateway": {
            "address": gateway["name"],
            "title": "a gateway process's reply queue",
            "description": "Outcomes of the commands the gateway's own bus user (GATEWAY_BUS_USER) published.",
            "parameters": {"process": {"description": "hex: one queue per gateway process"}},
            "messages": {"outcome": OUTCOME},
            "bindings": _queue_binding(gateway),
        },
    }


def _dead_letter_channel() -> dict[str, Any]:
    bound_from = [{"bindingKey": "", "exchange": _exchange(DEAD_LETTER_EXCHANGE)}]
    letter = _message(
        "dead-letter",
        "A command that could not be applied, unchanged, with the reason",
        {"description": "the command's body as it was published (not necessarily JSON)"},
        headers.DEAD_LETTER,
        headers.DEAD_LETTER_PROPERTIES,
    )
    return {
        "address": DEAD_LETTER_QUEUE_NAME,
        "title": "the dead-letter queue",
        "description": (
            "What can never be applied (not JSON, schema-invalid, unknown routing key or version) and commands the "
            "worker gave up on after a long outage (those also have a `dead_lettered` outcome). Operators list and "
            "replay them: `opengovfood deadletters list|replay`."
        ),
        "messages": {"dead-letter": letter},
        "bindings": _queue_binding(
            _queue(dead_letter_queue(RABBITMQ_3), on_4=dead_letter_queue(RABBITMQ_4)) | {"x-bound-from": bound_from}
        ),
    }


def _operation(action: str, channel: str, messages: list[str], summary: str, mode: int, mandatory: bool) -> Any:
    """An operation on `channel` (its id) with these of its messages, published in delivery `mode`."""
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{key}"} for key in messages],
        "bindings": {"amqp": {"deliveryMode": mode, "mandatory": mandatory, "bindingVersion": AMQP}},
    }


def _operations() -> dict[str, Any]:
    reply = {
        "channel": {"$ref": "#/channels/replies.service"},
        "messages": [{"$ref": "#/channels/replies.service/messages/outcome"}],
    }
    operations = {
        f"receive.{name.value}": _operation(
            "receive", f"command.{name.value}", [f"{name.value}.v{v}" for v in sorted(versions, reverse=True)],
            f"OpenGov-Food applies `{name.value}` and answers the outcome to `reply_to`", 2, True,
        ) | {"reply": reply}
        for name, versions in BODIES.items()
    }  # fmt: skip
    operations |= {
        f"send.{event.value}": _operation(
            "send",
            f"event.{event.value}",
            [event.value],
            f"`{event.value}`, after the commit (at least once)",
            2,
            False,
        )
        for event in EventName
    }
    operations["send.event-log"] = _operation(
        "send", "event-log", [name.value for name in EventName], "Every event, appended to the log in relay order",
        2, False,
    )  # fmt: skip
    operations["send.outcome.gateway"] = _operation(
        "send", "replies.gateway", ["outcome"], "The outcome of a command the gateway published, to it", 1, False
    )
    operations["send.dead-letter"] = _operation(
        "send", "dead-letters", ["dead-letter"], "A command that can never be applied, with the reason", 2, True
    )
    return operations


def _servers() -> dict[str, Any]:
    server = {"pathname": f"/{VHOST}", "protocolVersion": "0.9.1", "security": SECURITY}
    return {
        "broker": server | {"host": "localhost:5672", "protocol": "amqp", "description": "AMQP"},
        "broker-tls": server | {"host": "localhost:5671", "protocol": "amqps", "description": "AMQP over TLS"},
    }


def document() -> dict[str, Any]:
    """The whole document, for a deployment with the default settings."""
    refs, schemas = _schemas()
    channels = {f"command.{name.value}": _command_channel(name, refs) for name in BODIES}
    channels |= {f"event.{name.value}": _event_channel(name, refs) for name in EventName}
    channels |= _reply_channels() | {"dead-letters": _dead_letter_channel(), "event-log": _event_log_channel(refs)}
    return {
        "asyncapi": "3.0.0",
        "info": INFO,
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": channels,
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": {"outcome": _outcome(refs)},
            "securitySchemes": {"busUser": BUS_USER},
        },
    }


def to_yaml(doc: dict[str, Any]) -> str:
    plain = json.loads(json.dumps(doc))  # no node shared twice: YAML writes every one in full, no anchors
    return str(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=100))


def main() -> None:
    """Write the document (default: docs/asyncapi.yaml)."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/asyncapi.yaml")
    out.write_text(to_yaml(document()), encoding="utf-8")


if __name__ == "__main__":
    main()
