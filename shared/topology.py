"""Exchanges, queues and headers on RabbitMQ: declared from here only."""

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from faststream.rabbit import ExchangeType, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import QueueType

from shared.contracts.events import EVENTS_EXCHANGE_NAME

COMMANDS_EXCHANGE_NAME = "opengovfood.commands"
PARTITIONS_EXCHANGE_NAME = "opengovfood.commands.partitions"
DEAD_LETTER_EXCHANGE_NAME = "opengovfood.dead-letter"
DEAD_LETTER_QUEUE_NAME = "opengovfood.dead-letter"

# Message headers of the public contract (see README, "The message contract").
HEADER_SCHEMA_VERSION = "x-schema-version"
HEADER_ACTOR = "x-actor"  # "user:<id>" or "anonymous"; honoured only from the gateway's bus user
HEADER_OWNER = "x-owner"  # partition key: the owner's user id, or the e-mail for user.create
HEADER_FINGERPRINT = "x-fingerprint"  # optional: identifies the request behind an idempotency key
HEADER_REQUEST_ID = "x-request-id"

COMMANDS_EXCHANGE = RabbitExchange(COMMANDS_EXCHANGE_NAME, type=ExchangeType.TOPIC, durable=True)
PARTITIONS_EXCHANGE = RabbitExchange(
    PARTITIONS_EXCHANGE_NAME,
    type=ExchangeType.X_CONSISTENT_HASH,
    durable=True,
    arguments={"hash-header": HEADER_OWNER},
)
EVENTS_EXCHANGE = RabbitExchange(EVENTS_EXCHANGE_NAME, type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange(DEAD_LETTER_EXCHANGE_NAME, type=ExchangeType.FANOUT, durable=True)


def partition_queue_name(partition: int) -> str:
    return f"opengovfood.commands.p{partition}"


def partition_queue(partition: int, delivery_limit: int) -> RabbitQueue:
    """A quorum queue of one partition; single-active-consumer guards failover between workers."""
    return RabbitQueue(
        partition_queue_name(partition),
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key="1",  # the consistent-hash weight of this partition
        arguments={
            "x-single-active-consumer": True,
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE_NAME,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


DEAD_LETTER_QUEUE = RabbitQueue(DEAD_LETTER_QUEUE_NAME, queue_type=QueueType.QUORUM, durable=True)


def partitions_of_worker(partitions: int, index: int, count: int) -> list[int]:
    """Worker `index` of `count` consumes the partitions p with p mod count == index."""
    return [p for p in range(partitions) if p % count == index]


async def declare_topology(rabbit_url: str, partitions: int, delivery_limit: int) -> None:
    """Declare (idempotently) the exchanges, partition queues and dead-letter queue.

    A short connection of its own, so that FastStream's declarer does not cache these queues on
    its default channel (each consumer needs its own channel, prefetch and delivery tags).
    """
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        commands = await _exchange(channel, COMMANDS_EXCHANGE)
        partitioned = await _exchange(channel, PARTITIONS_EXCHANGE)
        await partitioned.bind(commands, routing_key="#")
        await _exchange(channel, EVENTS_EXCHANGE)
        dead_letters = await _exchange(channel, DEAD_LETTER_EXCHANGE)
        dead_letter_queue = await _queue(channel, DEAD_LETTER_QUEUE)
        await dead_letter_queue.bind(dead_letters, routing_key="")
        for partition in range(partitions):
            queue = await _queue(channel, partition_queue(partition, delivery_limit))
            await queue.bind(partitioned, routing_key="1")


async def _exchange(channel: AbstractChannel, exchange: RabbitExchange) -> AbstractExchange:
    return await channel.declare_exchange(
        exchange.name, exchange.type.value, durable=exchange.durable, arguments=exchange.arguments
    )


async def _queue(channel: AbstractChannel, queue: RabbitQueue) -> AbstractQueue:
    return await channel.declare_queue(queue.name, durable=queue.durable, arguments=queue.arguments)
