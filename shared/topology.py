"""Exchanges, queues and headers on RabbitMQ: declared from here only."""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.brokers import connect_first
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.contracts.headers import HEADER_OWNER
from shared.event_log import EVENT_LOG_ARGUMENTS, EVENT_LOG_BINDING_KEY, EVENT_LOG_NAME

log = logging.getLogger(__name__)

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
    """An exchange as we declare it (durable unless said otherwise)."""

    name: str
    type: str
    arguments: dict[str, Any] = field(default_factory=dict)
    durable: bool = True


@dataclass(frozen=True)
class Queue:
    """A queue as we declare it (durable unless said otherwise)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False


COMMANDS_EXCHANGE = Exchange(COMMANDS_EXCHANGE_NAME, "topic")
# Transient on purpose. The consistent-hash ring gives each binding its buckets in the order the
# bindings were added, and a broker that restarts recovers durable bindings in an order of its own:
# measured on 3.10.8, one restart in three moved about half of the owners to another partition,
# splitting each one's commands over two queues consumed independently (out of order). A transient
# exchange is gone after a restart, so intake stays closed (publishes are returned: 503) until
# declare_topology, which the worker runs on every new connection, binds p0, p1, … again in order
# and then reopens intake: the same ring every time.
PARTITIONS_EXCHANGE = Exchange(
    PARTITIONS_EXCHANGE_NAME, "x-consistent-hash", {"hash-header": HEADER_OWNER}, durable=False
)
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


async def declare_topology(rabbit_url: str | Sequence[str], partitions: int) -> None:
    """Declare (idempotently) the exchanges, partition queues, dead-letter queue and event log, on a
    short connection of its own; the routing from the commands exchange to the partitions last, once
    every partition queue is bound (before that, the ring would hold only some of them).

    The partition count only changes through `repartition` (which drains first): with another
    number of partition queues on the broker, this refuses (TopologyMismatch), since binding more
    or fewer would move owners to other partitions while their older commands still wait. While a
    repartition is under way intake stays closed: the commands exchange is not bound to the
    partitions (a bind that raced with the repartition's start is undone: the marker is checked
    again after it). A durable queue that exists with other arguments is kept as it is (_declare_kept).
    """
    connection = await connect_first(rabbit_url)
    async with connection:
        existing = await existing_partitions(connection)
        if existing not in (0, partitions):
            raise TopologyMismatch(
                f"the broker has {existing} partition queues but COMMAND_PARTITIONS is {partitions}: "
                "change the count with `opengovfood bus repartition`, which drains them first"
            )
        partitioned = await _partitions_exchange(connection)
        channel = await connection.channel()
        commands = await _exchange(channel, COMMANDS_EXCHANGE)
        events = await _exchange(channel, EVENTS_EXCHANGE)
        event_log = await _declare_kept(connection, EVENT_LOG)
        await event_log.bind(events, routing_key=EVENT_LOG_BINDING_KEY)
        dead_letters = await _exchange(channel, DEAD_LETTER_EXCHANGE)
        version = broker_version(connection)
        dead_letter = await _declare_kept(connection, dead_letter_queue(version))
        await dead_letter.bind(dead_letters, routing_key="")
        for partition in range(partitions):  # in order: the ring is the same whoever builds it
            queue = await _declare_kept(connection, partition_queue(partition, version))
            await queue.bind(partitioned, routing_key=PARTITION_WEIGHT)
        if not await repartitioning(connection):
            await partitioned.bind(commands, routing_key="#")
            if await repartitioning(connection):  # it began meanwhile, and may have unbound before our bind
                await partitioned.unbind(commands, routing_key="#")


async def _partitions_exchange(connection: aio_pika.abc.AbstractConnection) -> AbstractExchange:
    """The transient partitions exchange; a durable one that an earlier version declared is
    replaced (its ring could change at the broker's next restart)."""
    channel = await connection.channel()
    try:
        return await _exchange(channel, PARTITIONS_EXCHANGE)
    except aio_pika.exceptions.ChannelPreconditionFailed:  # declared durable: it closed the channel
        channel = await connection.channel()
        await channel.exchange_delete(PARTITIONS_EXCHANGE.name)
        return await _exchange(channel, PARTITIONS_EXCHANGE)


async def _declare_kept(connection: aio_pika.abc.AbstractConnection, queue: Queue) -> AbstractQueue:
    """Declare a durable queue; one that already exists with other arguments is taken as it is.

    A queue's arguments never change in place: one grown on a cluster, or declared by another release
    (e.g. with x-quorum-initial-group-size), answers PRECONDITION_FAILED to our declaration, and that
    must not stop a worker that declares the topology at every start. It keeps working as it is.
    """
    channel = await connection.channel()  # the refusal closes the channel it was asked on
    try:
        return await declare_queue(channel, queue)
    except aio_pika.exceptions.ChannelPreconditionFailed as refusal:
        log.warning("queue %s exists with other arguments; kept as it is (%s)", queue.name, refusal)
        channel = await connection.channel()
        return await channel.declare_queue(queue.name, passive=True)


async def _exchange(channel: AbstractChannel, exchange: Exchange) -> AbstractExchange:
    return await channel.declare_exchange(
        exchange.name, exchange.type, durable=exchange.durable, arguments=exchange.arguments
    )


async def declare_queue(channel: AbstractChannel, queue: Queue) -> AbstractQueue:
    """Declare `queue` exactly as described."""
    return await channel.declare_queue(
        queue.name, durable=queue.durable, exclusive=queue.exclusive, auto_delete=queue.auto_delete,
        arguments=queue.arguments,
    )  # fmt: skip
