"""For the replay tests: one owner's commands on the bus, the outbox's record of their events, and
examples/follower.py as a process that can be killed and restarted on its state file."""

import asyncio
import itertools
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from tests import settings as test_settings
from tests.security.helpers import BusLogin
from tests.support.bus import command_message, publish
from tests.support.polling import eventually
from tests.support.processes import ROOT

STATUSES = ["pending", "in_progress", "completed", "cancelled"]
ITEM_FIELDS = ("owner_id", "title", "description", "status")
# The outbox rows of the commands $1: a hash join, where `= ANY($1)` compares each row with each id.
OUTBOX_OF_COMMANDS = "outbox JOIN unnest($1::uuid[]) AS sent(command_id) USING (command_id)"
ITEMS = "SELECT id, owner_id, title, description, status FROM item WHERE owner_id = $1 ORDER BY id"


class Writes:
    """item.create, item.update and item.delete of one owner, published as that owner, in order;
    the command ids kept, to find their events in the outbox."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self.command_ids: list[uuid.UUID] = []
        self.live: list[int] = []  # items created and not deleted, as far as applied
        self._updates = itertools.count()

    async def send(self, commands: list[tuple[str, dict[str, Any]]], window: int = 1) -> None:
        """Publish the commands, `window` of them awaiting their confirms at once: in order between
        windows, maybe not within one (so never two commands on one item in a window)."""
        ids = [uuid.uuid4() for _ in commands]
        self.command_ids += ids
        actor, owner = f"user:{self.owner_id}", str(self.owner_id)
        messages = [
            (name, command_message(body, actor=actor, owner=owner, command_id=command_id))
            for (name, body), command_id in zip(commands, ids, strict=True)
        ]
        await publish(messages, window)

    async def create(self, count: int, primary: asyncpg.Connection, deadline_s: float) -> None:
        creates = [("item.create", {"owner_id": self.owner_id, "title": f"c{n}"}) for n in range(count)]
        await self.send(creates, window=100)
        await self.all_applied(primary, deadline_s)
        self.live = [row["id"] for row in await primary.fetch(ITEMS, self.owner_id)]

    def updates(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """`count` updates spread over the live items, each changing its title and one other field."""
        commands = []
        for n in itertools.islice(self._updates, count):
            body: dict[str, Any] = {"item_id": self.live[n % len(self.live)], "title": f"r{n}"}
            if n % 3 == 0:
                body["description"] = None if n % 2 else f"d{n}"
            else:
                body["status"] = STATUSES[n % len(STATUSES)]
            commands.append(("item.update", body))
        return commands

    def deletes(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        gone, self.live = self.live[:count], self.live[count:]
        return [("item.delete", {"item_id": item_id}) for item_id in gone]

    async def all_applied(self, primary: asyncpg.Connection, deadline_s: float) -> None:
        """Each command sent is applied: its event is in the outbox (and on its way to the log)."""
        query = f"SELECT count(*) FROM {OUTBOX_OF_COMMANDS}"
        await eventually(lambda: primary.fetchval(query, self.command_ids), lambda n: n == len(self.command_ids),
                         deadline_s)  # fmt: skip


async def items_of(primary: asyncpg.Connection, owner_id: int) -> dict[str, dict[str, Any]]:
    """The owner's items on the primary, as the follower's mirror holds them."""
    return {str(row["id"]): {name: row[name] for name in ITEM_FIELDS} for row in await primary.fetch(ITEMS, owner_id)}


async def logged_events(primary: asyncpg.Connection, command_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """The events of these commands as the outbox holds them: each once, whatever the log repeats."""
    rows = await primary.fetch(f"SELECT payload FROM {OUTBOX_OF_COMMANDS} ORDER BY id", command_ids)
    return [json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"] for row in rows]


class Follower:
    """examples/follower.py on a state file, as a reader user; stderr goes to `log`."""

    def __init__(self, login: BusLogin, owner_id: int, state: Path, log: Path) -> None:
        credentials = f"{quote(login.name, safe='')}:{quote(login.password, safe='')}"
        self.env = {**os.environ, "RABBIT_URL": f"amqp://{credentials}@127.0.0.1:5672/{test_settings.VHOST}"}
        # Saves often (the follower still spends at most a tenth of its time saving): on a quiet
        # machine it replays thousands of events a second, and the default (every second) first
        # saved after the whole replay, so the kill came too late to be mid-replay.
        self.args = ["--owner-id", str(owner_id), "--from", "first", "--state", str(state), "--save-interval", "0.05"]
        self.state, self.log = state, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        """Start it; what it says it reads from (`first`, or the offset it resumes at)."""
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "examples/follower.py", *self.args, cwd=ROOT, env=self.env,
                stdout=asyncio.subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode()
        assert line.startswith("reading from "), line + self.log.read_text()[-3000:]
        return line.removeprefix("reading from ").strip()

    def saved(self) -> dict[str, Any]:
        """The state file as it is now ({} before the first save): renamed into place, never half-written."""
        return dict(json.loads(self.state.read_text())) if self.state.exists() else {}

    def progress(self) -> dict[str, Any]:
        """The state saved so far, while it runs: if it stopped (a gap, a crash), its error, at once."""
        assert self.process is not None
        assert self.process.returncode is None, f"the follower stopped: {self.log.read_text()[-3000:]}"
        return self.saved()

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL

    async def stop(self) -> dict[str, Any]:
        """SIGTERM: it saves its state and prints the mirror."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]
        return dict(json.loads(out.decode().splitlines()[-1]))
