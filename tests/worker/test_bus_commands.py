"""Commands published straight onto the bus: duplicates have one effect, poison is dead-lettered."""

import json
import uuid
from typing import Any

import asyncpg

from shared.contracts.imports import MAX_COMMAND_BYTES
from shared.topology import DEAD_LETTER_QUEUE_NAME
from tests.security.helpers import peek_queue
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually


async def test_the_same_command_published_twice_creates_one_row(http, primary: asyncpg.Connection) -> None:  # type: ignore[no-untyped-def]
    owner = await sign_up(http)
    command_id = uuid.uuid4()
    title = f"dup-{command_id.hex}"
    message = command_message(
        {"owner_id": owner.id, "title": title},
        actor=f"user:{owner.id}",
        owner=str(owner.id),
        command_id=command_id,
    )
    await publish([("item.create", message), ("item.create", message)])
    # A marker command published after both: once it is applied, both copies have been consumed.
    marker = command_message({"owner_id": owner.id, "title": "marker"}, actor=f"user:{owner.id}", owner=str(owner.id))
    await publish([("item.create", marker)])
    await eventually(
        lambda: primary.fetchval("SELECT count(*) FROM command WHERE command_id = $1", uuid.UUID(marker.message_id)),
        lambda n: n == 1,
    )
    assert await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", title) == 1
    assert await primary.fetchval("SELECT status FROM command WHERE command_id = $1", command_id) == "applied"


async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_applied(http, primary) -> None:  # type: ignore[no-untyped-def]
    owner = await sign_up(http)
    good = [
        command_message({"owner_id": owner.id, "title": f"good {i}"}, actor=f"user:{owner.id}", owner=str(owner.id))
        for i in range(5)
    ]
    poison = command_message(b"{not json", actor=f"user:{owner.id}", owner=str(owner.id))
    nul = command_message({"owner_id": owner.id, "title": "a\u0000b"}, actor=f"user:{owner.id}", owner=str(owner.id))
    await publish([("item.create", good[0]), ("item.create", poison), ("item.create", nul)]
                  + [("item.create", m) for m in good[1:]])  # fmt: skip
    await eventually(
        lambda: primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", owner.id), lambda n: n == 5
    )
    for message, reason in ((poison, "invalid item.create body"), (nul, "title")):
        command_id = uuid.UUID(message.message_id)
        recorded = await eventually(
            lambda command_id=command_id: primary.fetchrow(
                "SELECT status, detail, actor FROM command WHERE command_id = $1", command_id
            ),
            lambda row: row is not None,
        )
        assert (recorded["status"], recorded["actor"]) == ("dead_lettered", f"user:{owner.id}")
        assert reason in recorded["detail"]
        dead = await eventually(
            lambda message=message: _dead_letter(message.message_id), lambda found: found is not None
        )
        assert reason in dead["properties"]["headers"]["x-death-reason"]
    assert "a\x00b" not in (await primary.fetchval("SELECT detail FROM command WHERE command_id = $1",
                                                   uuid.UUID(nul.message_id)))  # fmt: skip


async def _dead_letter(message_id: str | None) -> dict[str, Any] | None:
    letters = peek_queue(DEAD_LETTER_QUEUE_NAME)
    return next((m for m in letters if m["properties"].get("message_id") == message_id), None)


async def test_a_body_over_1_114_112_bytes_is_dead_lettered_and_one_at_the_limit_is_applied(http, primary) -> None:  # type: ignore[no-untyped-def]
    owner = await sign_up(http)

    def padded(title: str, size: int) -> Any:
        body = json.dumps({"owner_id": owner.id, "title": title}).encode()
        return command_message(body.ljust(size), actor=f"user:{owner.id}", owner=str(owner.id))  # JSON: spaces

    at_limit, over = padded("at the limit", MAX_COMMAND_BYTES), padded("one byte over", MAX_COMMAND_BYTES + 1)
    assert MAX_COMMAND_BYTES == 1_114_112  # the figure docs/publishing.md gives
    await publish([("item.create", at_limit), ("item.create", over)])
    sql = "SELECT status, detail FROM command WHERE command_id = $1"
    outcomes = [
        await eventually(lambda m=m: primary.fetchrow(sql, uuid.UUID(m.message_id)), lambda row: row is not None)
        for m in (at_limit, over)
    ]
    assert [row["status"] for row in outcomes] == ["applied", "dead_lettered"]
    assert f"larger than {MAX_COMMAND_BYTES} bytes" in outcomes[1]["detail"]
