"""A third-party service following OpenGov-Food's events: a mirror of one owner's items, on FastStream.

    RABBIT_URL=amqp://stock-sync-events:secret@localhost:5672/opengovfood \\
        python examples/follower.py --queue stock-sync-events.items --owner-id 42 --items 1500

Written only from docs/consuming.md and docs/asyncapi.yaml: one pydantic model per event it handles,
named and shaped as the document's schemas (a test holds them to it), and one handler per event.
The RabbitMQ user is an event reader (`opengovfood bus provision --reader stock-sync-events`): it may
declare, bind and read its own queues `<user>.<anything>`. The queue is durable, so events published
while this process is down wait for it. Prints "bound" once the queue is bound, then the mirror as
JSON once it holds `--items` items (or when `--timeout` runs out).
"""

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from faststream import FastStream
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitMessage, RabbitQueue
from pydantic import BaseModel

EVENTS = RabbitExchange("opengovfood.events", type=ExchangeType.TOPIC, declare=False)  # OpenGov-Food declares it
ACCEPTED_VERSIONS = {"1", "2"}  # the current version and the previous one (docs/consuming.md)
log = logging.getLogger("follower")  # warnings and errors on stderr; stdout is the mirror's


class Event(BaseModel):
    """What every event carries; `data` is the event's own."""

    event_id: UUID
    command_id: UUID
    resource_id: int  # the item; for item.imported the owner; for user.deleted the user
    occurred_at: datetime
    request_id: str | None = None


class ItemCreated(BaseModel):
    owner_id: int
    title: str
    description: str | None
    status: str


class ImportedItem(ItemCreated):
    id: int


class ItemsImported(BaseModel):
    import_id: UUID
    seq: int
    items: list[ImportedItem]


class ItemUpdated(BaseModel):
    """Only the fields the command changed: what is absent stays as it was."""

    title: str | None = None
    description: str | None = None
    status: str | None = None


class Deleted(BaseModel):
    pass


class ItemCreatedEvent(Event):
    name: Literal["item.created"]
    data: ItemCreated


class ItemImportedEvent(Event):
    name: Literal["item.imported"]
    data: ItemsImported


class ItemUpdatedEvent(Event):
    name: Literal["item.updated"]
    data: ItemUpdated


class ItemDeletedEvent(Event):
    name: Literal["item.deleted"]
    data: Deleted


class UserDeletedEvent(Event):
    name: Literal["user.deleted"]
    data: Deleted


class Mirror:
    """The items of one owner, rebuilt from events: at least once, so each event_id counts once."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self.items: dict[int, dict[str, Any]] = {}
        self.seen: set[UUID] = set()

    def first_time(self, event: Event) -> bool:
        new = event.event_id not in self.seen
        self.seen.add(event.event_id)
        return new


def routed(routing_key: str) -> Any:
    """A handler's filter: this event, in a schema version we read."""

    def accepts(message: RabbitMessage) -> bool:
        version = str(message.headers.get("x-schema-version"))
        return message.raw_message.routing_key == routing_key and version in ACCEPTED_VERSIONS

    return accepts


def service(rabbit_url: str, queue_name: str, mirror: Mirror, wanted: int, timeout_s: float) -> FastStream:
    """The FastStream application: one queue of ours bound to the events we mirror, a handler each."""
    broker = RabbitBroker(rabbit_url, logger=log)  # FastStream's own logger would print to stdout
    queue = RabbitQueue(queue_name, durable=True, routing_key="item.*")
    events = broker.subscriber(queue, EVENTS, channel=Channel(prefetch_count=100))  # acked once handled
    app = FastStream(broker, logger=log)

    def applied() -> None:
        if len(mirror.items) >= wanted:
            app.exit()

    @events(filter=routed("item.created"))
    async def item_created(event: ItemCreatedEvent) -> None:
        if mirror.first_time(event) and event.data.owner_id == mirror.owner_id:
            mirror.items[event.resource_id] = event.data.model_dump()
        applied()

    @events(filter=routed("item.imported"))
    async def item_imported(event: ItemImportedEvent) -> None:
        if mirror.first_time(event) and event.resource_id == mirror.owner_id:
            for item in event.data.items:
                mirror.items[item.id] = item.model_dump(exclude={"id"})
        applied()

    @events(filter=routed("item.updated"))
    async def item_updated(event: ItemUpdatedEvent) -> None:
        if mirror.first_time(event) and event.resource_id in mirror.items:
            mirror.items[event.resource_id].update(event.data.model_dump(exclude_unset=True))

    @events(filter=routed("item.deleted"))
    async def item_deleted(event: ItemDeletedEvent) -> None:
        if mirror.first_time(event):
            mirror.items.pop(event.resource_id, None)

    @events(filter=routed("user.deleted"))
    async def user_deleted(event: UserDeletedEvent) -> None:
        if mirror.first_time(event) and event.resource_id == mirror.owner_id:
            mirror.items.clear()  # the owner's items went with it: no item.deleted follows

    @events
    async def anything_else(body: Any) -> None:
        """Another item event or schema version: acknowledged, not mirrored."""

    @app.after_startup
    async def bound() -> None:
        declared = await broker.declare_queue(queue)
        await declared.bind(EVENTS.name, routing_key="user.deleted")  # a second binding of the same queue
        asyncio.get_running_loop().call_later(timeout_s, app.exit)
        print("bound", flush=True)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", required=True, help="a durable queue of yours: <your user>.<anything>")
    parser.add_argument("--owner-id", type=int, required=True)
    parser.add_argument("--items", type=int, required=True, help="stop once the mirror holds this many items")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    mirror = Mirror(args.owner_id)
    asyncio.run(service(os.environ["RABBIT_URL"], args.queue, mirror, args.items, args.timeout).run())
    print(json.dumps({"items": {str(item_id): item for item_id, item in sorted(mirror.items.items())}}))
    sys.exit(0 if len(mirror.items) >= args.items else 1)


if __name__ == "__main__":
    main()
