"""Exchanges, queues and headers on RabbitMQ: declared from here only."""

import re
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.contracts.headers import HEADER_OWNER
from shared.event_log import EVENT_LOG_ARGUMENTS, EVENT_LOG_BINDING_KEY, EVENT_LOG_NAME

COMMANDS_EXCHANGE_NAME = "opengovfood.commands"
PARTITIONS_EXCHANGE_NAME = "opengovfood.commands.partitions"
DEAD_LETTER_EXCHANGE_NAME = "opengovfood.dead-letter"
DEAD_LETTER_QUEUE_NAME = "opengovfood.dead-letter"

# Reply queues: the only queues the worker sends outcomes to (worker/outbound.py says why).
GATEWAY_REPLY_PREFIX = "opengovfood.replies."  # + hex: one per gateway process, for its bus user's commands
GATEWAY_REPLY_QUEUE = re.compile(re.escape(GATEWAY_REPLY_PREFIX) + "[0-9a-f]+")


def service_reply_prefix(bus_user: str) -> str:
    """A publishing service's reply queues are `<its bus user>.replies.<anything>`."""
    return f"{bus_user}.replies."


@dataclass(frozen=True)
class Exchange:
    """A durable exchange as we declare it."""

    name: str
    type: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Queue:
    """A queue as we declare it (durable unless said otherwise)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False


COMMANDS_EXCHANGE = Exchange(COMMANDS_EXCHANGE_NAME, "topic")
PARTITIONS_EXCHANGE = Exchange(PARTITIONS_EXCHANGE_NAME, "x-consistent-hash", {"hash-header": HEADER_OWNER})
EVENTS_EXCHANGE = Exchange(EVENTS_EXCHANGE_NAME, "topic")
DEAD_LETTER_EXCHANGE = Exchange(DEAD_LETTER_EXCHANGE_NAME, "fanout")
EVENT_LOG = Queue(EVENT_LOG_NAME, EVENT_LOG_ARGUMENTS)  # every event, replayable: shared/event_log.py


MAX_PARTITIONS = 64


class TopologyMismatch(Exception):
    """The broker holds another number of partition queues than COMMAND_PARTITIONS says."""


PARTITION_QUEUE_PREFIX = "opengovfood.commands.p"
# While this exchange exists a repartition is under way and intake stays closed: declare_topology
# never binds the commands exchange to the partitions then, whoever restarts (cli/repartition.py).
REPARTITION_MARKER_NAME = "opengovfood.commands.repartitioning"


def partition_queue_name(partition: int) -> str:
    return f"{PARTITION_QUEUE_PREFIX}{partition}"


def delivery_limit_arguments(broker_version: str) -> dict[str, Any]:
    """No broker-side delivery limit: the worker decides what is poison (by its content, or by
    failing for good in the database), never how often a delivery went back to the queue (a crash,
    a restart, a lost connection each count on RabbitMQ 3.x). 3.x has no limit unless one is set
    (and reads -1 as zero); 4.x defaults to 20, so it is lifted there explicitly (-1)."""
    major = broker_version.split(".", 1)[0]
    return {"x-delivery-limit": -1} if major.isdigit() and int(major) >= 4 else {}


def partition_queue(partition: int, broker_version: str) -> Queue:
    """A quorum queue of one partition; single-active-consumer guards failover between workers."""
    return Queue(
        partition_queue_name(partition),
        arguments={
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE_NAME,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            **delivery_limit_arguments(broker_version),
        },
    )


def dead_letter_queue(broker_version: str) -> Queue:
    """Where what cannot be applied waits for replay; `deadletters list` returns its messages each time."""
    return Queue(DEAD_LETTER_QUEUE_NAME, {"x-queue-type": "quorum", **delivery_limit_arguments(broker_version)})


def gateway_reply_queue(name: str) -> Queue:
    """A gateway process's own reply queue: it lives as long as that process's connection."""
    return Queue(name, durable=False, exclusive=True, auto_delete=True)


PARTITION_WEIGHT = "1"  # each partition's consistent-hash weight (its binding key)


def partitions_of_worker(partitions: int, index: int, count: int) -> list[int]:
    """Worker `index` of `count` consumes the partitions p with p mod count == index."""
    return [p for p in range(partitions) if p % count == index]


def broker_version(connection: aio_pika.abc.AbstractConnection) -> str:
    """The RabbitMQ version the connection reports (e.g. "3.10.8")."""
    transport = connection.transport
    properties = transport.connection.server_properties if transport is not None else {}
    version = properties.get("version", "")
    return version.decode() if isinstance(version, bytes) else str(version)


async def existing_partitions(connection: aio_pika.abc.AbstractConnection) -> int:
    """How many partition queues p0, p1, … exist (they are always a contiguous range)."""
    count = 0
    while count < MAX_PARTITIONS:
        channel = await connection.channel()  # a missing queue closes the channel it was asked on
        try:
            await channel.declare_queue(partition_queue_name(count), passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return count
        finally:
            if not channel.is_closed:
                await channel.close()
        count += 1
    return count


async def _exists(connection: aio_pika.abc.AbstractConnection, exchange: str) -> bool:
    channel = await connection.channel()  # a missing exchange closes the channel it was asked on
    try:
        await channel.get_exchange(exchange, ensure=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
    return True


async def repartitioning(connection: aio_pika.abc.AbstractConnection) -> bool:
    """A repartition is under way (or was interrupted): intake must stay closed until it completes."""
    return await _exists(connection, REPARTITION_MARKER_NAME)


async def declare_topology(rabbit_url: str, partitions: int) -> None:
    """Declare (idempotently) the exchanges, partition queues, dead-letter queue and event log, on a
    short connection of its own.

    The partition count only changes through `repartition` (which drains first): with another
    number of partition queues on the broker, this refuses (TopologyMismatch), since binding more
    or fewer would move owners to other partitions while their older commands still wait. While a
    repartition is under way intake stays closed: the commands exchange is not bound to the
    partitions (a bind that raced with the repartition's start is undone: the marker is checked
    again after it).
    """
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        existing = await existing_partitions(connection)
        if existing not in (0, partitions):
            raise TopologyMismatch(
                f"the broker has {existing} partition queues but COMMAND_PARTITIONS is {partitions}: "
                "change the count with `opengovfood bus repartition`, which drains them first"
            )
        channel = await connection.channel()
        commands = await _exchange(channel, COMMANDS_EXCHANGE)
        partitioned = await _exchange(channel, PARTITIONS_EXCHANGE)
        if not await repartitioning(connection):
            await partitioned.bind(commands, routing_key="#")
            if await repartitioning(connection):  # it began meanwhile, and may have unbound before our bind
                await partitioned.unbind(commands, routing_key="#")
        events = await _exchange(channel, EVENTS_EXCHANGE)
        event_log = await declare_queue(channel, EVENT_LOG)
        await event_log.bind(events, routing_key=EVENT_LOG_BINDING_KEY)
        dead_letters = await _exchange(channel, DEAD_LETTER_EXCHANGE)
        version = broker_version(connection)
        dead_letter = await declare_queue(channel, dead_letter_queue(version))
        await dead_letter.bind(dead_letters, routing_key="")
        for partition in range(partitions):
            queue = await declare_queue(channel, partition_queue(partition, version))
            await queue.bind(partitioned, routing_key=PARTITION_WEIGHT)


async def _exchange(channel: AbstractChannel, exchange: Exchange) -> AbstractExchange:
    return await channel.declare_exchange(exchange.name, exchange.type, durable=True, arguments=exchange.arguments)


async def declare_queue(channel: AbstractChannel, queue: Queue) -> AbstractQueue:
    """Declare `queue` exactly as described."""
    return await channel.declare_queue(
        queue.name, durable=queue.durable, exclusive=queue.exclusive, auto_delete=queue.auto_delete,
        arguments=queue.arguments,
    )  # fmt: skip
