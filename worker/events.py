"""Events out, reliably: outbox rows are written in the command's transaction and relayed after commit."""

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.events import EVENTS_EXCHANGE_NAME, Event, EventName
from shared.logging import HEADER_REQUEST_ID
from shared.models import CommandStatus, OutboxEvent
from shared.topology import HEADER_SCHEMA_VERSION
from worker.envelope import Envelope
from worker.handlers.result import Result

log = logging.getLogger(__name__)

EVENT_OF: dict[CommandName, EventName] = {
    CommandName.USER_CREATE: EventName.USER_CREATED,
    CommandName.USER_UPDATE: EventName.USER_UPDATED,
    CommandName.USER_DELETE: EventName.USER_DELETED,
    CommandName.ITEM_CREATE: EventName.ITEM_CREATED,
    CommandName.ITEM_UPDATE: EventName.ITEM_UPDATED,
    CommandName.ITEM_DELETE: EventName.ITEM_DELETED,
}
EVENT_NAMESPACE = uuid.UUID("1b4f6a52-2f0e-4d7c-9a51-3c7e8d0f6b21")


def event_for(envelope: Envelope, result: Result) -> dict[str, Any] | None:
    """The outbox row for an applied command (None for rejections and commands without an event)."""
    name = EVENT_OF.get(envelope.name)
    if name is None or result.status != CommandStatus.APPLIED or result.resource_id is None:
        return None
    event = Event(
        event_id=uuid.uuid5(EVENT_NAMESPACE, f"{envelope.command_id}:{name}"),
        command_id=envelope.command_id,
        name=name,
        resource_id=result.resource_id,
        occurred_at=datetime.now(UTC),
        data=result.changes,
        request_id=envelope.request_id,
    )
    payload = event.model_dump(mode="json")
    return {"command_id": envelope.command_id, "partition": envelope.partition, "name": name, "payload": payload}


@dataclass(frozen=True)
class OutboxRow:
    id: int
    name: str
    command_id: uuid.UUID
    payload: dict[str, Any]


async def write(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[OutboxRow]:
    """Insert outbox rows in the command batch's transaction; returned in order, with their ids."""
    if not rows:
        return []
    result = await conn.execute(insert(OutboxEvent).returning(OutboxEvent.id, sort_by_parameter_order=True), rows)
    return [
        OutboxRow(r.id, row["name"], row["command_id"], row["payload"]) for r, row in zip(result, rows, strict=True)
    ]


async def mark_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Mark relayed rows. Losing the mark (a crash before it commits) only relays them again, and
    consumers deduplicate by event_id: it rides along in the next command transaction."""
    if ids:
        await conn.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(list(ids))).values(published_at=datetime.now(UTC))
        )


class Relay:
    """Publishes outbox rows in id order (persistent, confirmed); they are marked published after."""

    def __init__(self, engine: AsyncEngine, rabbit_url: str) -> None:
        self.engine = engine
        self.rabbit_url = rabbit_url
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def _events_exchange(self) -> AbstractExchange:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect_robust(self.rabbit_url)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.get_exchange(EVENTS_EXCHANGE_NAME)
        assert self._exchange is not None
        return self._exchange

    async def publish(self, rows: Sequence[OutboxRow]) -> list[int]:
        """Relay rows just committed; their ids, for the caller to mark published in its next
        transaction. A failure leaves them unpublished for the next flush (never lost)."""
        await self._send(rows)
        return [row.id for row in rows]

    async def flush(self, partition: int) -> int:
        """Relay everything of this partition still unpublished (after a crash between commit and publish)."""
        async with self.engine.connect() as conn:
            query = select(OutboxEvent).where(OutboxEvent.partition == partition, OutboxEvent.published_at.is_(None))
            rows = (await conn.execute(query.order_by(OutboxEvent.id))).all()
        await self._send(rows)
        await self.mark_published([row.id for row in rows])
        return len(rows)

    async def mark_published(self, ids: Sequence[int]) -> None:
        """In a transaction of its own (when no command transaction is coming to carry the mark)."""
        if ids:
            async with self.engine.begin() as conn:
                await mark_published(conn, ids)

    async def _send(self, rows: Sequence[Any]) -> None:
        if not rows:
            return
        exchange = await self._events_exchange()
        # Publishes on one channel go out in call order (aiormq's FIFO lock); confirms are awaited together.
        # Not mandatory: an event nobody subscribed to is simply dropped (no return frame to handle).
        sends = (exchange.publish(self._message(row), routing_key=row.name, mandatory=False) for row in rows)
        await asyncio.gather(*sends)

    @staticmethod
    def _message(row: Any) -> aio_pika.Message:
        return aio_pika.Message(
            json.dumps(row.payload, separators=(",", ":")).encode(),  # written as Event.model_dump(mode="json")
            message_id=str(row.payload["event_id"]),
            correlation_id=str(row.command_id),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={
                HEADER_SCHEMA_VERSION: str(SCHEMA_VERSION),
                "x-command-id": str(row.command_id),
                HEADER_REQUEST_ID: row.payload.get("request_id") or "",
            },
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
