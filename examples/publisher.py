"""A third-party service publishing to OpenGov-Food: one item, then a CSV import, with the outcomes.

    RABBIT_URL=amqp://stock-sync:secret@localhost:5672/opengovfood \\
        python examples/publisher.py --owner-id 42 --title "Lentil soup" --csv items.csv

Written only from docs/publishing.md and docs/asyncapi.yaml, on FastStream: nothing here comes
from OpenGov-Food's code. What FastStream leaves to us is set on each publish: persistent, the
message id, a confirm awaited within a timeout, unroutable commands raising. The RabbitMQ user of
RABBIT_URL is this service's own, granted `item.create` and `item.import` for the owner. Prints
one JSON line per outcome, then a summary.
"""

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitMessage, RabbitQueue
from pydantic import BaseModel

COMMANDS = RabbitExchange("opengovfood.commands", type=ExchangeType.TOPIC, declare=False)  # OpenGov-Food declares it
PUBLISH_TIMEOUT_S = 10.0
log = logging.getLogger("publisher")  # warnings and errors on stderr; stdout is the outcomes'
SCHEMA_VERSION = "2"
MAX_ROWS, MAX_ROWS_BYTES = 1_000, 1_048_576  # per chunk: rows, and bytes of the rows' JSON joined by commas


def csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows numbered as a spreadsheet shows them (the header is row 1); an empty cell is an absent field."""
    with path.open(encoding="utf-8-sig", newline="") as source:
        for number, record in enumerate(csv.DictReader(source), start=2):
            yield {"row": number, **{name: value for name, value in record.items() if value}}


def chunks(path: Path) -> list[list[bytes]]:
    """The rows of each chunk as compact JSON: a new chunk before a row would pass either bound."""
    result: list[list[bytes]] = [[]]
    size = 0
    for row in csv_rows(path):
        encoded = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()
        if result[-1] and (len(result[-1]) == MAX_ROWS or size + 1 + len(encoded) > MAX_ROWS_BYTES):
            result.append([])
            size = 0
        size += len(encoded) + (1 if result[-1] else 0)
        result[-1].append(encoded)
    return result if result[0] else []


class Outcome(BaseModel):
    """The fields of an outcome this service reads (docs/asyncapi.yaml `Outcome`)."""

    command_id: UUID
    status: str
    code: str | None = None
    import_progress: dict[str, Any] | None = None


class Service:
    """One broker (a confirming channel that raises on returns); outcomes arrive on this service's
    own reply queue, handled by a FastStream subscriber."""

    def __init__(self, rabbit_url: str) -> None:
        self.user = unquote(urlparse(rabbit_url).username or "")
        # on_return_raises: an unroutable command raises instead of vanishing (FastStream's default is off)
        self.broker = RabbitBroker(rabbit_url, default_channel=Channel(on_return_raises=True), logger=log)
        self.replies = RabbitQueue(f"{self.user}.replies.{uuid.uuid4().hex}", exclusive=True)
        self.expected: set[str] = set()
        self.found: dict[str, dict[str, Any]] = {}
        self.all_in = asyncio.Event()

        @self.broker.subscriber(self.replies)
        async def outcome(body: dict[str, Any], message: RabbitMessage) -> None:
            correlation_id = message.raw_message.correlation_id
            if correlation_id in self.expected:
                Outcome.model_validate(body)  # an outcome, or the handler fails (and the reply is rejected)
                self.found[correlation_id] = body
                print(json.dumps({"outcome": self.found[correlation_id]}), flush=True)
            if self.expected <= set(self.found):
                self.all_in.set()

    async def send(self, routing_key: str, body: bytes, owner_id: int) -> str:
        """Publish one command (persistent, mandatory, confirmed); return its command id."""
        command_id = str(uuid.uuid4())
        self.expected.add(command_id)
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):  # FastStream ignores publish(timeout=)
            await self.broker.publish(
                body,
                exchange=COMMANDS,
                routing_key=routing_key,
                message_id=command_id,  # never left to the library
                content_type="application/json",
                persist=True,
                mandatory=True,
                user_id=self.user,
                reply_to=self.replies.name,
                headers={"x-schema-version": SCHEMA_VERSION, "x-owner": str(owner_id)},
            )
        return command_id

    async def outcomes(self, timeout_s: float) -> dict[str, dict[str, Any]]:
        """The outcomes of the commands sent, as they arrived (each printed as a JSON line)."""
        with contextlib.suppress(TimeoutError):  # the summary says what is missing
            async with asyncio.timeout(timeout_s):
                await self.all_in.wait()
        return self.found


async def run(rabbit_url: str, owner_id: int, title: str, source: Path, timeout_s: float) -> dict[str, Any]:
    service = Service(rabbit_url)
    async with service.broker:
        await service.broker.start()
        item = json.dumps({"owner_id": owner_id, "title": title}).encode()
        created = await service.send("item.create", item, owner_id)
        import_id, parts = str(uuid.uuid4()), chunks(source)
        sent = []
        for seq, rows in enumerate(parts):
            head = json.dumps({"import_id": import_id, "seq": seq, "total": len(parts), "owner_id": owner_id})
            body = head[:-1].encode() + b',"rows":[' + b",".join(rows) + b"]}"
            sent.append(await service.send("item.import", body, owner_id))
        outcomes = await service.outcomes(timeout_s)
    progress = [outcomes[command_id]["import_progress"] for command_id in sent if command_id in outcomes]
    final = [p for p in progress if p["state"] == "completed"]
    return {
        "item": outcomes.get(created),
        "import_id": import_id,
        "chunks": [{"rows": len(rows), "bytes": sum(map(len, rows)) + len(rows) - 1} for rows in parts],
        "chunk_outcomes": len(progress),
        "completed": final[-1] if final else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner-id", type=int, required=True)
    parser.add_argument("--title", default="Published by a service")
    parser.add_argument("--csv", type=Path, required=True, help="header: title, and optionally description, status")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every outcome")
    args = parser.parse_args()
    summary = asyncio.run(run(os.environ["RABBIT_URL"], args.owner_id, args.title, args.csv, args.timeout))
    print(json.dumps({"summary": summary}))
    sys.exit(0 if summary["item"] and summary["completed"] else 1)


if __name__ == "__main__":
    main()
