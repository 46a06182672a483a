"""The test vhost, emptied of our topology so each run declares it afresh."""

import aio_pika

from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    DEAD_LETTER_EXCHANGE_NAME,
    DEAD_LETTER_QUEUE_NAME,
    PARTITIONS_EXCHANGE_NAME,
    partition_queue_name,
)
from tests import settings as test_settings

MAX_PARTITIONS = 64


async def reset_vhost() -> None:
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        for partition in range(MAX_PARTITIONS):
            await channel.queue_delete(partition_queue_name(partition))
        await channel.queue_delete(DEAD_LETTER_QUEUE_NAME)
        for exchange in (COMMANDS_EXCHANGE_NAME, PARTITIONS_EXCHANGE_NAME, DEAD_LETTER_EXCHANGE_NAME):
            await channel.exchange_delete(exchange)
