"""A docs-only FastStream app: the AsyncAPI document of every command and event, from the registries.

`faststream docs gen shared.contracts.asyncapi:app --yaml --out docs/asyncapi.yaml` (`make docs`).
The real worker consumes partition queues without typed handlers, so its own schema shows no bodies.
"""

from typing import Any

from faststream import FastStream
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.specification import AsyncAPI

from shared.contracts.commands import SCHEMA_VERSION, CommandBody
from shared.contracts.events import EVENTS_EXCHANGE_NAME, Event, EventName
from shared.topology import COMMANDS_EXCHANGE_NAME, HEADER_ACTOR, HEADER_OWNER, HEADER_SCHEMA_VERSION
from worker.catalogue import CATALOGUE

EVENTS_EXCHANGE = RabbitExchange(EVENTS_EXCHANGE_NAME, type=ExchangeType.TOPIC, durable=True)
COMMANDS_EXCHANGE = RabbitExchange(COMMANDS_EXCHANGE_NAME, type=ExchangeType.TOPIC, durable=True)

COMMAND_NOTE = (
    f"Publish to exchange `{COMMANDS_EXCHANGE.name}` with routing key `{{key}}`: persistent, mandatory, with "
    f"publisher confirms. Properties: `message_id` = the command id (UUID), `content_type: application/json`, "
    f"`user_id` = your RabbitMQ user. Headers: `{HEADER_SCHEMA_VERSION}: {SCHEMA_VERSION}` (or the previous "
    f"version), `{HEADER_OWNER}` = the owner's user id (`user.create`: the e-mail), `{HEADER_ACTOR}` (gateway "
    "only). Optional `reply_to` receives the outcome. See docs/publishing.md."
)
EVENT_NOTE = (
    f"Emitted on exchange `{EVENTS_EXCHANGE_NAME}` with routing key `{{key}}` after the command's commit, "
    "at least once: deduplicate by `event_id`."
)


def _command_handler(body_type: type[CommandBody]) -> Any:
    async def handle(body: Any) -> None:
        """Documentation only."""

    handle.__annotations__["body"] = body_type
    return handle


def build_broker() -> RabbitBroker:
    """A broker that is never started: one subscriber per command, one publisher per event."""
    broker = RabbitBroker()
    for name, command in CATALOGUE.items():
        body_type = command.body
        subscriber = broker.subscriber(
            RabbitQueue(f"opengovfood.commands.{name.value}", routing_key=name.value, declare=False),
            exchange=COMMANDS_EXCHANGE,
            title=f"command {name.value}",
            description=COMMAND_NOTE.format(key=name.value),
        )
        subscriber(_command_handler(body_type))
    for event in EventName:
        broker.publisher(
            routing_key=event.value,
            exchange=EVENTS_EXCHANGE,
            title=f"event {event.value}",
            description=EVENT_NOTE.format(key=event.value),
            schema=Event,
        )
    return broker


app = FastStream(
    build_broker(),
    specification=AsyncAPI(
        title="OpenGov-Food commands and events",
        version=f"{SCHEMA_VERSION}.0.0",
        description="The message contract: commands other services may publish, events they may follow.",
    ),
)
