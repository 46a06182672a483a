"""Commands published straight onto the bus: duplicates have one effect, poison is dead-lettered."""

import uuid

import asyncpg

from shared.topology import DEAD_LETTER_QUEUE_NAME
from tests.support.api import sign_up
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import queue_info


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
    before = queue_info(DEAD_LETTER_QUEUE_NAME).get("messages", 0)
    good = [
        command_message({"owner_id": owner.id, "title": f"good {i}"}, actor=f"user:{owner.id}", owner=str(owner.id))
        for i in range(5)
    ]
    poison = command_message(b"{not json", actor=f"user:{owner.id}", owner=str(owner.id))
    await publish([("item.create", good[0]), ("item.create", poison), *[("item.create", m) for m in good[1:]]])
    await eventually(
        lambda: primary.fetchval("SELECT count(*) FROM item WHERE owner_id = $1", owner.id), lambda n: n == 5
    )
    await eventually(lambda: _dead_letters(), lambda n: n == before + 1)


async def _dead_letters() -> int:
    return int(queue_info(DEAD_LETTER_QUEUE_NAME).get("messages", 0))
