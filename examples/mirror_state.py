"""The follower's state: its mirror of one owner's items, the last offset of the event log it
handled and the ids of the events it applied, kept together and saved together.

One file holds all three, replaced atomically (a temporary file, fsync, rename, fsync of the
directory): after a crash the file is the state as of some event, never a mirror with an offset it
does not belong to. Resuming at `offset + 1` then redoes nothing and skips nothing; the event ids
are for the log's own repeats (a relay that republishes after a lost confirm appends an event again).
"""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID


class Gap(Exception):
    """An offset was skipped: the log no longer holds it, or its event was not handled."""


@dataclass
class Mirror:
    """One owner's items as the events built them, and where in the log they were built to."""

    owner_id: int
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Per item, how many events changed it: what the log says of that item, counted once each.
    versions: dict[int, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # ids of the events applied (only those of this owner)
    offset: int | None = None  # the last offset handled; None: nothing read yet
    changed: bool = False  # since it was last saved

    def unhandled(self, offset: int) -> bool:
        """Whether the delivery at `offset` is still to handle (False: handled before); Gap if it
        is not the next one."""
        if self.offset is not None and offset <= self.offset:
            return False
        if self.offset is not None and offset != self.offset + 1:
            raise Gap(f"offset {offset} follows {self.offset}: what is between was never handled")
        return True

    def handled(self, offset: int) -> None:
        self.offset, self.changed = offset, True

    def first_time(self, event_id: UUID) -> bool:
        return str(event_id) not in self.seen

    def put(self, event_id: UUID, item_id: int, fields: dict[str, Any]) -> None:
        self.items[item_id] = fields
        self._applied(event_id, item_id)

    def merge(self, event_id: UUID, item_id: int, fields: dict[str, Any]) -> None:
        self.items[item_id].update(fields)
        self._applied(event_id, item_id)

    def drop(self, event_id: UUID, item_id: int) -> None:
        self.items.pop(item_id, None)
        self.versions.pop(item_id, None)
        self.seen.add(str(event_id))

    def clear(self, event_id: UUID) -> None:
        self.items.clear()
        self.versions.clear()
        self.seen.add(str(event_id))

    def _applied(self, event_id: UUID, item_id: int) -> None:
        self.versions[item_id] = self.versions.get(item_id, 0) + 1
        self.seen.add(str(event_id))

    def as_json(self) -> dict[str, Any]:
        return {
            "owner_id": self.owner_id,
            "offset": self.offset,
            "items": {str(item_id): item for item_id, item in sorted(self.items.items())},
            "versions": {str(item_id): version for item_id, version in sorted(self.versions.items())},
            "seen": sorted(self.seen),
        }


def load(path: Path, owner_id: int) -> Mirror:
    """The mirror saved at `path`, or a new one if there is none."""
    if not path.exists():
        return Mirror(owner_id)
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved["owner_id"] != owner_id:
        raise ValueError(f"{path} holds the mirror of owner {saved['owner_id']}, not of {owner_id}")
    return Mirror(
        owner_id,
        items={int(item_id): item for item_id, item in saved["items"].items()},
        versions={int(item_id): version for item_id, version in saved["versions"].items()},
        seen=set(saved["seen"]),
        offset=saved["offset"],
    )


def save(mirror: Mirror, path: Path) -> None:
    """Replace `path` with the mirror, atomically: a reader (or a restart) sees the old file or the new."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(mirror.as_json(), file, separators=(",", ":"))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    mirror.changed = False


@dataclass
class Saver:
    """Saves the mirror when it changed, at most every `interval_s`, and never more than a tenth of
    the time: a big mirror takes longer to write, so it is written less often."""

    mirror: Mirror
    path: Path
    interval_s: float
    last_took_s: float = 0.0

    def pause_s(self) -> float:
        return max(self.interval_s, 9 * self.last_took_s)

    def save_if_changed(self) -> None:
        if self.mirror.changed:
            started = time.perf_counter()
            save(self.mirror, self.path)
            self.last_took_s = time.perf_counter() - started
