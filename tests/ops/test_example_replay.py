"""examples/follower.py rebuilds its mirror from the event log, as a provisioned reader: thousands of
events written before it starts, SIGKILL mid-replay while writes go on, restarts on its state file.
At the end its mirror is the database's, every event of the owner applied once: a gap leaves an item
or a version behind, a double apply puts a version ahead.

`make test` runs it with REPLAY_EVENTS=3000 events and REPLAY_KILLS=1; `make soak` with tens of
thousands and several kills."""

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from cli.bus import reader_user
from tests import settings as test_settings
from tests.security.helpers import provision
from tests.support.api import sign_up
from tests.support.polling import eventually
from tests.support.replay import Follower, Writes, items_of, logged_events

pytestmark = pytest.mark.rabbit
EVENTS = int(os.environ.get("REPLAY_EVENTS", "3000"))  # written before the follower starts
KILLS = int(os.environ.get("REPLAY_KILLS", "1"))
PUBLISH_WINDOW = 100  # commands awaiting their confirm at once, while the history is written
DEADLINE_S = 60 + EVENTS / 200  # for each wait: the machine is shared, the soak is big
LIVE_BATCH = 20  # updates per batch while the follower replays, with a create and a delete


async def write_history(writes: Writes, primary: asyncpg.Connection) -> None:
    """EVENTS events of the owner, applied: creates, updates of every kind, a few deletes."""
    await writes.create(EVENTS // 4, primary, DEADLINE_S)
    deletes = EVENTS // 100
    await writes.send(writes.updates(EVENTS - EVENTS // 4 - deletes), window=PUBLISH_WINDOW)
    await writes.all_applied(primary, DEADLINE_S)  # before deleting what they update
    await writes.send(writes.deletes(deletes))
    await writes.all_applied(primary, DEADLINE_S)


async def keep_writing(writes: Writes, until: asyncio.Event) -> int:
    """Batches of updates, each with a create and a delete, at the pace the broker confirms them,
    until `until` is set; how many batches."""
    batches = 0
    while not until.is_set() or batches == 0:
        create = ("item.create", {"owner_id": writes.owner_id, "title": f"live{batches}"})
        await writes.send([*writes.updates(LIVE_BATCH), *writes.deletes(1), create])
        batches += 1
    return batches


async def applied(follower: Follower, events: int) -> None:
    """Until the follower's saved state has `events` of the owner's events applied."""
    await eventually(lambda: asyncio.to_thread(follower.progress),
                     lambda state: len(state.get("seen", ())) >= events, DEADLINE_S)  # fmt: skip


async def test_the_follower_killed_mid_replay_while_writes_go_on_ends_with_the_databases_items(
    stack: object, http: httpx.AsyncClient, primary: asyncpg.Connection, tmp_path: Path
) -> None:
    owner = await sign_up(http)
    writes = Writes(owner.id)
    started = time.monotonic()
    await write_history(writes, primary)
    written_s = time.monotonic() - started
    reader = provision(reader_user(f"{test_settings.VHOST}.replay-reader"))
    follower = Follower(reader, owner.id, tmp_path / "state.json", tmp_path / "follower.log")
    started = time.monotonic()
    assert await follower.start() == "first"
    killed = asyncio.Event()
    writing = asyncio.create_task(keep_writing(writes, killed))
    kill_points = []
    for kill in range(1, KILLS + 1):
        mid_replay = kill * EVENTS // (KILLS + 1)  # of the owner's events, all written before it started
        await applied(follower, mid_replay)
        await follower.kill()
        saved = follower.saved()  # what the restart finds: maybe saved after the poll above
        assert len(saved["seen"]) < EVENTS, "killed after the replay, not during it"
        kill_points.append(len(saved["seen"]))
        assert await follower.start() == str(saved["offset"] + 1)  # the state wins over --from first
    killed.set()
    batches = await writing
    await writes.all_applied(primary, DEADLINE_S)
    events = await logged_events(primary, writes.command_ids)
    await applied(follower, len(events))  # every event of the owner, in the state it saved
    caught_up_s = time.monotonic() - started
    printed, state = await follower.stop(), follower.saved()

    expected = await items_of(primary, owner.id)
    versions = Counter(str(event["resource_id"]) for event in events if event["name"] != "item.deleted")
    print(f"\nreplay: {len(events)} events of the owner ({EVENTS} before it started, {batches} live batches), "
          f"written in {written_s:.1f}s, killed with {kill_points} applied; caught up in {caught_up_s:.1f}s "
          f"to offset {state['offset']} ({state['offset'] / caught_up_s:.0f} offsets/s, kills and restarts "
          f"included)")  # fmt: skip
    assert printed["items"] == state["items"] == expected
    assert printed["offset"] == state["offset"]
    assert state["versions"] == {item_id: versions[item_id] for item_id in expected}  # each applied once
    assert sorted(state["seen"]) == sorted(event["event_id"] for event in events)  # none missed
