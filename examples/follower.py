"""A third-party service following OpenGov-Food's events: a mirror of one owner's items, on FastStream.

    RABBIT_URL=amqp://stock-sync-events:secret@localhost:5672/opengovfood \\
        python examples/follower.py --owner-id 42 --from first --state stock-sync.json

Written only from docs/consuming.md and docs/asyncapi.yaml: one pydantic model per event it handles,
named and shaped as the document's schemas (a test holds them to it), and one handler per event.
The RabbitMQ user is an event reader (`opengovfood bus provision --reader stock-sync-events`).

It reads the event log, the stream `opengovfood.events.log`: from the first event kept (or a
timestamp) it rebuilds the mirror from the whole history, then goes on with new events as they come.
With `--state` it keeps the mirror, the last offset handled and the ids of the events applied in
one file (mirror_state.py), and a restart resumes at that offset + 1. Prints "reading from START"
once it consumes, then, when it stops, the mirror as JSON: on SIGTERM or SIGINT, once the mirror
holds `--items` items, or when `--timeout` runs out.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from faststream import AckPolicy, BaseMiddleware, FastStream
from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitMessage, RabbitQueue
from mirror_state import Gap, Mirror, Saver, load
from pydantic import BaseModel

EVENT_LOG = "opengovfood.events.log"  # a stream of every event, in relay order (docs/consuming.md)
PREFETCH = 1_000
SAVE_INTERVAL_S = 1.0  # measured: docs/consuming.md, "How often it saves"
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


def routed(routing_key: str) -> Any:
    """A handler's filter: this event, in a schema version we read. A coroutine function, because
    FastStream runs a plain function filter in a worker thread: a thread hop per handler and delivery."""

    async def accepts(message: RabbitMessage) -> bool:
        version = str(message.headers.get("x-schema-version"))
        return message.raw_message.routing_key == routing_key and version in ACCEPTED_VERSIONS

    return accepts


@dataclass
class Run:
    """What the service was asked to do, and why it stopped early if it did."""

    mirror: Mirror
    start: int | str | datetime
    saver: Saver | None = None
    wanted_items: int | None = None
    timeout_s: float | None = None
    failure: str | None = None
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by the delivery being handled


class InLogOrder(BaseMiddleware):
    """Each delivery handled once, one at a time, in log order, its offset kept once it is handled.

    FastStream runs each delivery in a task of its own, and one may overtake another (with filters
    that ran in worker threads, half of 3,700 deliveries did): deliveries take `run.turn` as they
    arrive, which is in order, and hold it until their handler is done. A delivery at an offset
    handled before (a consumer restored after a reconnection starts again where it first started)
    is skipped; one past a gap stops the service."""

    def __init__(self, msg: Any, /, *, context: Any, run: Run) -> None:
        super().__init__(msg, context=context)
        self.run = run

    async def on_receive(self) -> None:
        await self.run.turn.acquire()

    async def after_processed(self, *exc_info: Any) -> bool | None:
        self.run.turn.release()
        return False

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        offset = int(msg.headers["x-stream-offset"])
        try:
            if not self.run.mirror.unhandled(offset):
                return None
        except Gap as gap:
            self.run.failure = f"{gap}: delete the state file and rebuild from first"
            self.context.get("app").exit()
            return None
        result = await call_next(msg)
        self.run.mirror.handled(offset)  # not if the handler failed: the next offset is then a gap
        return result


def service(rabbit_url: str, run: Run) -> FastStream:
    """The FastStream application: one consumer on the event log from `run.start`, a handler per event."""
    in_log_order = partial(InLogOrder, run=run)
    broker = RabbitBroker(rabbit_url, logger=log, middlewares=[in_log_order])  # log: FastStream's prints to stdout
    # A consumer of a stream must set a prefetch and ack (the broker refuses it otherwise); on a
    # stream an ack removes nothing, it makes room in the prefetch window.
    events = broker.subscriber(
        RabbitQueue(EVENT_LOG, queue_type=QueueType.STREAM, declare=False),  # OpenGov-Food declares it
        channel=Channel(prefetch_count=PREFETCH),
        consume_args={"x-stream-offset": run.start},
        ack_policy=AckPolicy.ACK,
    )
    app = FastStream(broker, logger=log)
    mirror = run.mirror

    def applied() -> None:
        if run.wanted_items is not None and len(mirror.items) >= run.wanted_items:
            app.exit()

    @events(filter=routed("item.created"))
    async def item_created(event: ItemCreatedEvent) -> None:
        if mirror.first_time(event.event_id) and event.data.owner_id == mirror.owner_id:
            mirror.put(event.event_id, event.resource_id, event.data.model_dump())
        applied()

    @events(filter=routed("item.imported"))
    async def item_imported(event: ItemImportedEvent) -> None:
        if mirror.first_time(event.event_id) and event.resource_id == mirror.owner_id:
            for item in event.data.items:
                mirror.put(event.event_id, item.id, item.model_dump(exclude={"id"}))
        applied()

    @events(filter=routed("item.updated"))
    async def item_updated(event: ItemUpdatedEvent) -> None:
        if mirror.first_time(event.event_id) and event.resource_id in mirror.items:
            mirror.merge(event.event_id, event.resource_id, event.data.model_dump(exclude_unset=True))

    @events(filter=routed("item.deleted"))
    async def item_deleted(event: ItemDeletedEvent) -> None:
        if mirror.first_time(event.event_id) and event.resource_id in mirror.items:
            mirror.drop(event.event_id, event.resource_id)

    @events(filter=routed("user.deleted"))
    async def user_deleted(event: UserDeletedEvent) -> None:
        if mirror.first_time(event.event_id) and event.resource_id == mirror.owner_id:
            mirror.clear(event.event_id)  # the owner's items went with it: no item.deleted follows

    @events
    async def anything_else(body: Any) -> None:
        """Another event or schema version: not mirrored (its offset is handled all the same)."""

    @app.after_startup
    async def reading() -> None:
        if run.timeout_s is not None:
            asyncio.get_running_loop().call_later(run.timeout_s, app.exit)
        if run.saver is not None:
            asyncio.create_task(keep_saving(run, run.saver)).add_done_callback(stop_if_failed)
        print(f"reading from {run.start}", flush=True)

    def stop_if_failed(saving: asyncio.Task[None]) -> None:
        if not saving.cancelled() and saving.exception() is not None:
            run.failure = f"saving the state failed: {saving.exception()!r}"
            app.exit()

    return app


async def keep_saving(run: Run, saver: Saver) -> None:
    """Save the mirror while the service runs, between two deliveries (holding their turn): the
    mirror as of the offset it saves with."""
    while True:
        await asyncio.sleep(saver.pause_s())
        async with run.turn:
            saver.save_if_changed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner-id", type=int, required=True)
    parser.add_argument(
        "--from", dest="start", default="first", type=start_of,
        help="first (the oldest event kept; the default) or an ISO 8601 timestamp (UTC if no zone given); "
        "ignored when --state holds an offset: the service resumes after it",
    )  # fmt: skip
    parser.add_argument("--state", type=Path, help="the file keeping the mirror and its offset across restarts")
    parser.add_argument(
        "--save-interval", type=float, default=SAVE_INTERVAL_S,
        help="seconds between saves, at least (and never more than a tenth of the time spent saving)",
    )  # fmt: skip
    parser.add_argument("--items", type=int, help="stop once the mirror holds this many items")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    args = parser.parse_args()
    mirror = load(args.state, args.owner_id) if args.state else Mirror(args.owner_id)
    saver = Saver(mirror, args.state, args.save_interval) if args.state else None
    start = args.start if mirror.offset is None else mirror.offset + 1  # the state wins over --from
    run = Run(mirror, start, saver, wanted_items=args.items, timeout_s=args.timeout)
    asyncio.run(service(os.environ["RABBIT_URL"], run).run())
    try:
        if run.saver is not None:
            run.saver.save_if_changed()
    except OSError as error:
        run.failure = run.failure or f"saving the state failed: {error!r}"
    print(json.dumps({"items": mirror.as_json()["items"], "offset": mirror.offset}))
    if run.failure is not None:
        sys.exit(f"follower: {run.failure}")
    sys.exit(0 if args.items is None or len(mirror.items) >= args.items else 1)


def start_of(text: str) -> str | datetime:
    """`first` or a timestamp, as the x-stream-offset consumer argument takes it (to the second)."""
    if text == "first":
        return text
    moment = datetime.fromisoformat(text)  # a ValueError is argparse's "invalid start_of value"
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


if __name__ == "__main__":
    main()
