"""One partition queue as a FastStream subscriber, iterated: the transport's source of deliveries.

Iterated (`async for`), not a handler: a handler resolves its arguments through FastDepends, in a
thread pool for sync callables, so deliveries overtook each other and an ack with `multiple=True`
hit a tag already acked; iterated, they come in delivery order at 157 against 135 µs of CPU a message
for bare aio-pika (a lean handler cost 189, the default one 399: docs/architecture.md). The raw
aio-pika message goes on, untouched: our decoder keeps its reasons (worker/decode.py), and the
`message_id` is the producer's, never one FastStream invents.
"""

from collections.abc import AsyncIterator

from aio_pika.abc import AbstractIncomingMessage
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

from shared.topology import partition_queue_name


async def deliveries(broker: RabbitBroker, partition: int, prefetch: int) -> AsyncIterator[AbstractIncomingMessage]:
    """The partition's deliveries in order, on a channel of its own with this prefetch, unacknowledged
    (the transport acks after the commit). Ends when the channel or the connection does: the queue is
    declared passively and not robust, so nothing resubscribes behind the caller's back."""
    subscriber = broker.subscriber(
        RabbitQueue(partition_queue_name(partition), declare=False, robust=False),
        channel=Channel(prefetch_count=prefetch),
        ack_policy=AckPolicy.MANUAL,
        persistent=False,  # a broker outlives none of its subscriptions: nothing to keep
    )
    await subscriber.start()
    try:
        async for message in subscriber:
            yield message.raw_message
    finally:
        await subscriber.stop()
