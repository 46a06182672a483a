"""`opengovfood events tail`: what happened, from the event log (a RabbitMQ stream), as JSON lines.

Each line is the event as published, with its place in the log first: `{"offset": 41, "event_id": …,
"name": "item.created", "resource_id": 7, …}`. Without `--follow` it stops once the log has had
nothing more to deliver for `--idle` seconds; with it, it waits for new events until interrupted.
"""

import asyncio
import fnmatch
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import aio_pika
import typer

from shared.brokers import NoBroker, connect_first
from shared.event_log import read_log, stream_start
from shared.settings import get_settings

events_app = typer.Typer(help="The event log: every event the worker published.", no_args_is_help=True)
Match = Callable[[dict[str, Any]], bool]


def about_resource(resource_id: int) -> Match:
    """An event of this resource: its `resource_id`, or an item that an `item.imported` event created."""

    def matches(event: dict[str, Any]) -> bool:
        if event.get("resource_id") == resource_id:
            return True
        imported = event.get("data", {}).get("items", []) if event.get("name") == "item.imported" else []
        return any(item.get("id") == resource_id for item in imported)

    return matches


def named(pattern: str) -> Match:
    """An event whose name matches a shell pattern (`item.*`, `user.updated`)."""
    return lambda event: fnmatch.fnmatchcase(str(event.get("name", "")), pattern)


async def tail(
    rabbit_urls: str | Sequence[str], start: str | int | datetime, matches: list[Match], idle_s: float | None
) -> int:
    """Print the matching events from `start` on as JSON lines (from the first broker that answers: the
    log is replicated on a cluster); how many were printed."""
    printed = 0
    connection = await connect_first(rabbit_urls)
    async with connection:
        channel = await connection.channel()
        async for entry in read_log(channel, start, idle_s):
            event = json.loads(entry.body)
            if all(match(event) for match in matches):
                typer.echo(json.dumps({"offset": entry.offset, **event}))
                printed += 1
    return printed


@events_app.command("tail")
def tail_command(
    start: Annotated[
        str, typer.Option("--from", help="first, last, next, an offset, or an ISO 8601 timestamp (UTC if no zone)")
    ] = "last",
    name: Annotated[str | None, typer.Option(help="only events whose name matches this pattern: item.*")] = None,
    resource: Annotated[int | None, typer.Option(help="only events about this resource id")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep waiting for new events")] = False,
    idle: Annotated[float, typer.Option(min=0.1, help="without --follow: stop after this many quiet seconds")] = 2.0,
) -> None:
    """Print the event log's events as JSON lines, from any offset, filtered by name and resource."""
    try:
        offset = stream_start(start)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--from") from None
    matches = ([named(name)] if name else []) + ([about_resource(resource)] if resource is not None else [])
    try:
        asyncio.run(tail(get_settings().broker_urls, offset, matches, None if follow else idle))
    except KeyboardInterrupt:
        pass
    except (aio_pika.exceptions.AMQPError, OSError, NoBroker) as error:
        typer.echo(f"cannot read the event log: {error!r}", err=True)
        raise typer.Exit(1) from None
