"""`opengovfood deadletters …`: what is in the dead-letter queue, and replaying it."""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import aio_pika
import typer
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from shared.brokers import connect_first
from shared.contracts.headers import HEADER_DEATH_REASON, HEADER_ORIGINAL_ROUTING_KEY
from shared.publishing import bus_user
from shared.settings import get_settings
from shared.topology import COMMANDS_EXCHANGE_NAME, DEAD_LETTER_QUEUE_NAME

BOOKKEEPING = {HEADER_DEATH_REASON, HEADER_ORIGINAL_ROUTING_KEY, "x-death", "x-first-death-exchange",
               "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
               "x-last-death-reason", "x-delivery-count"}  # fmt: skip

deadletters_app = typer.Typer(help=f"The dead-letter queue {DEAD_LETTER_QUEUE_NAME}.", no_args_is_help=True)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    routing_key: str
    reason: str
    count: int


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _first_death(deaths: Any) -> dict[str, Any]:
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return dict(deaths[0])
    return {}


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    """Our reason header, else what RabbitMQ wrote in x-death (e.g. the delivery limit)."""
    headers = dict(message.headers or {})
    first = _first_death(headers.get("x-death"))
    reason = headers.get(HEADER_DEATH_REASON) or first.get("reason") or "unknown"
    routing_keys = first.get("routing-keys") or []
    routing_key = headers.get(HEADER_ORIGINAL_ROUTING_KEY) or message.routing_key or (routing_keys or [""])[0]
    return DeadLetter(
        id=_text(message.message_id or ""),
        routing_key=_text(routing_key),
        reason=_text(reason),
        count=int(first.get("count") or 1),
    )


async def _take_all(channel: AbstractChannel) -> list[AbstractIncomingMessage]:
    """Every message in the queue, unacknowledged: closing the channel puts back what is not acked."""
    queue = await channel.declare_queue(DEAD_LETTER_QUEUE_NAME, passive=True)
    messages = []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        messages.append(message)
    return messages


async def list_dead_letters(rabbit_urls: Sequence[str]) -> list[DeadLetter]:
    connection = await connect_first(rabbit_urls)
    async with connection:
        channel = await connection.channel()
        return [describe(message) for message in await _take_all(channel)]


async def replay(rabbit_urls: Sequence[str], ids: set[str] | None) -> list[str]:
    """Republish the chosen dead letters (all when ids is None) with their id and headers, then ack them.
    A node dying midway leaves the rest in the queue; one republished but not acked is replayed again
    by the next run, and the inbox applies it once."""
    connection = await connect_first(rabbit_urls)
    user = bus_user(rabbit_urls[0])
    replayed = []
    async with connection:
        channel = await connection.channel(on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        for message in await _take_all(channel):
            letter = describe(message)
            if ids is not None and letter.id not in ids:
                continue
            headers = {k: v for k, v in (message.headers or {}).items() if k not in BOOKKEEPING}
            again = aio_pika.Message(
                message.body,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                content_type=message.content_type or "application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=user,  # RabbitMQ only accepts our own user
                reply_to=message.reply_to,
                headers=headers,
            )
            await exchange.publish(again, routing_key=letter.routing_key, mandatory=True)
            await message.ack()
            replayed.append(letter.id)
    return replayed


@deadletters_app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False) -> None:
    """Each dead letter: its command id, routing key, count and reason."""
    letters = asyncio.run(list_dead_letters(get_settings().broker_urls))
    for letter in letters:
        if as_json:
            typer.echo(json.dumps(letter.__dict__))
        else:
            typer.echo(f"{letter.id}  {letter.routing_key}  x{letter.count}  {letter.reason}")
    if not as_json:
        typer.echo(f"{len(letters)} dead letter(s)")


@deadletters_app.command("replay")
def replay_command(
    ids: Annotated[list[str] | None, typer.Argument(help="command ids (message_id) to replay")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="with --all: do not ask for confirmation")] = False,
) -> None:
    """Republish dead letters to the commands exchange with their routing key and id, then remove them."""
    if not ids and not replay_all:
        raise typer.BadParameter("name the command ids to replay, or pass --all")
    if replay_all and not yes:
        typer.confirm(f"Replay every message in {DEAD_LETTER_QUEUE_NAME}?", abort=True)
    done = asyncio.run(replay(get_settings().broker_urls, None if replay_all else set(ids or [])))
    for command_id in done:
        typer.echo(f"replayed {command_id}")
    missing = set(ids or []) - set(done)
    if missing:
        typer.echo(f"not in the dead-letter queue: {', '.join(sorted(missing))}", err=True)
        raise typer.Exit(1)
