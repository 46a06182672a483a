"""Publish one command to OpenGov-Food with plain aio-pika, and wait for its outcome.

    RABBIT_URL=amqp://guest:guest@localhost:5672/ python examples/publish_command.py --email ann@example.org

Signs a user up (`user.create`): the password is hashed with argon2id here, only the hash is sent.
See docs/publishing.md for the contract.
"""

import argparse
import asyncio
import getpass
import json
import os
import sys
import uuid
from urllib.parse import unquote, urlparse

import aio_pika
from argon2 import PasswordHasher

EXCHANGE = "opengovfood.commands"
SCHEMA_VERSION = "2"


async def publish_user_create(
    rabbit_url: str, email: str, password: str, full_name: str, wait_s: float
) -> dict[str, object]:
    command_id = uuid.uuid4()
    body = {"email": email, "hashed_password": PasswordHasher().hash(password), "full_name": full_name}
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel(on_return_raises=True)  # publisher confirms are on by default
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)  # where the outcome comes back
        exchange = await channel.get_exchange(EXCHANGE, ensure=True)
        message = aio_pika.Message(
            json.dumps(body).encode(),
            message_id=str(command_id),  # the command id: a redelivery or a retry with it has one effect
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=unquote(urlparse(rabbit_url).username or "guest"),  # RabbitMQ checks it is you
            reply_to=replies.name,
            headers={"x-schema-version": SCHEMA_VERSION, "x-owner": email, "x-actor": "anonymous"},
        )
        await exchange.publish(message, routing_key="user.create", mandatory=True)  # returns once confirmed
        try:
            async with asyncio.timeout(wait_s):
                async with replies.iterator() as incoming:
                    async for reply in incoming:
                        async with reply.process():
                            outcome: dict[str, object] = json.loads(reply.body)
                            if outcome.get("command_id") == str(command_id):
                                return outcome
        except TimeoutError:
            pass
    return {"command_id": str(command_id), "status": "pending"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--email", required=True)
    parser.add_argument("--full-name", default="Example User")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the outcome")
    args = parser.parse_args()
    password = os.environ.get("EXAMPLE_PASSWORD") or getpass.getpass("password: ")
    rabbit_url = os.environ.get("RABBIT_URL", "amqp://guest:guest@localhost:5672/")
    outcome = asyncio.run(publish_user_create(rabbit_url, args.email, password, args.full_name, args.wait))
    print(json.dumps(outcome))
    sys.exit(0 if outcome.get("status") == "applied" else 1)


if __name__ == "__main__":
    main()
