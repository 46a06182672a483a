"""A third-party service following OpenGov-Food's events: a mirror of one owner's items.

    RABBIT_URL=amqp://stock-sync-events:secret@localhost:5672/opengovfood \\
        python examples/follower.py --queue stock-sync-events.items --owner-id 42 --items 1500

Written only from docs/consuming.md and docs/asyncapi.yaml, with plain aio-pika. The RabbitMQ user
is an event reader (`opengovfood bus provision --reader stock-sync-events`): it may declare, bind
and read its own queues `<user>.<anything>`. The queue is durable, so events published while this
process is down wait for it. Prints "bound" once the queue is bound, then the mirror as JSON once it
holds `--items` items (or when `--timeout` runs out).
"""

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aio_pika

EXCHANGE = "opengovfood.events"
ACCEPTED_VERSIONS = {"1", "2"}  # the current version and the previous one (docs/consuming.md)


class Mirror:
    """The items of one owner, rebuilt from events: at least once, so each event_id counts once."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self.items: dict[int, dict[str, Any]] = {}
        self.seen: set[str] = set()

    def apply(self, event: dict[str, Any]) -> None:
        if event["event_id"] in self.seen:
            return
        self.seen.add(event["event_id"])
        name, data, resource = event["name"], event["data"], event["resource_id"]
        if name == "item.created" and data["owner_id"] == self.owner_id:
            self.items[resource] = data
        elif name == "item.imported" and resource == self.owner_id:
            self.items.update({item["id"]: {k: v for k, v in item.items() if k != "id"} for item in data["items"]})
        elif name == "item.updated" and resource in self.items:
            self.items[resource] = {**self.items[resource], **data}
        elif name == "item.deleted":
            self.items.pop(resource, None)
        elif name == "user.deleted" and resource == self.owner_id:
            self.items.clear()  # the owner's items went with it: no item.deleted follows


async def follow(rabbit_url: str, queue_name: str, owner_id: int, wanted: int, timeout_s: float) -> Mirror:
    mirror = Mirror(owner_id)
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(queue_name, durable=True)
        for key in ("item.*", "user.deleted"):
            await queue.bind(EXCHANGE, routing_key=key)
        print("bound", flush=True)
        try:
            async with asyncio.timeout(timeout_s), queue.iterator() as incoming:
                async for message in incoming:
                    async with message.process():  # acked once applied: a crash before redelivers it
                        if str((message.headers or {}).get("x-schema-version")) in ACCEPTED_VERSIONS:
                            mirror.apply(json.loads(message.body))
                    if len(mirror.items) >= wanted:
                        break
        except TimeoutError:
            pass
    return mirror


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", required=True, help="a durable queue of yours: <your user>.<anything>")
    parser.add_argument("--owner-id", type=int, required=True)
    parser.add_argument("--items", type=int, required=True, help="stop once the mirror holds this many items")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    mirror = asyncio.run(follow(os.environ["RABBIT_URL"], args.queue, args.owner_id, args.items, args.timeout))
    print(json.dumps({"items": {str(item_id): item for item_id, item in sorted(mirror.items.items())}}))
    sys.exit(0 if len(mirror.items) >= args.items else 1)


if __name__ == "__main__":
    main()
