"""Publish commands straight onto the bus, as another service (or a replay) would."""

import asyncio
import json
import uuid
from typing import Any

import aio_pika

from shared.contracts.commands import SCHEMA_VERSION
from shared.contracts.headers import HEADER_ACTOR, HEADER_OWNER, HEADER_SCHEMA_VERSION
from shared.topology import COMMANDS_EXCHANGE_NAME
from tests import settings as test_settings


def command_message(
    body: dict[str, Any] | bytes,
    *,
    actor: str,
    owner: str,
    command_id: uuid.UUID | str | None = None,
    headers: dict[str, Any] | None = None,
) -> aio_pika.Message:
    return aio_pika.Message(
        body if isinstance(body, bytes) else json.dumps(body).encode(),
        message_id=str(command_id or uuid.uuid4()),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id="guest",
        headers={
            HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION),
            HEADER_ACTOR: actor,
            HEADER_OWNER: owner,
            **(headers or {}),
        },
    )


async def publish(messages: list[tuple[str, aio_pika.Message]], window: int = 1) -> None:
    """Publish (routing key, message) pairs in order, each confirmed, unroutable ones raising; with
    `window`, that many await their confirms at once (in order between windows, maybe not within)."""
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel(on_return_raises=True)
        exchange = await channel.get_exchange(COMMANDS_EXCHANGE_NAME)
        for start in range(0, len(messages), window):
            await asyncio.gather(*(exchange.publish(message, routing_key=routing_key, mandatory=True)
                                   for routing_key, message in messages[start : start + window]))  # fmt: skip
