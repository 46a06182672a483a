"""examples/mirror_state.py, the follower's state: mirror, offset and event ids saved together and
atomically, so that a follower killed anywhere, over a log that repeats events, applies each event
once (fast: no services)."""

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import example

state = example("mirror_state")
OWNER = 42
ITEM = {"owner_id": OWNER, "title": "soup", "description": None, "status": "pending"}
Entry = tuple[str, int, uuid.UUID, str]  # what the log holds at an offset: kind, item, event id, title


def built(tmp_path: Path) -> Any:
    """A mirror of two items, one updated, one deleted, at offset 6, saved."""
    mirror = state.Mirror(OWNER)
    ids = [uuid.UUID(int=n) for n in range(4)]
    mirror.put(ids[0], 1, dict(ITEM))
    mirror.put(ids[1], 2, dict(ITEM))
    mirror.merge(ids[2], 1, {"title": "broth"})
    mirror.drop(ids[3], 2)
    mirror.handled(6)
    state.save(mirror, tmp_path / "state.json")
    return mirror


def test_a_saved_mirror_loads_as_it_was(tmp_path: Path) -> None:
    mirror = built(tmp_path)
    loaded = state.load(tmp_path / "state.json", OWNER)
    assert (loaded.items, loaded.versions, loaded.seen, loaded.offset) == ({1: {**ITEM, "title": "broth"}}, {1: 2},
                                                                           mirror.seen, 6)  # fmt: skip
    assert len(loaded.seen) == 4
    assert not loaded.changed
    assert state.load(tmp_path / "none.json", OWNER).offset is None  # no file: a new mirror


def test_a_write_that_fails_midway_leaves_the_state_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = built(tmp_path)
    mirror.put(uuid.uuid4(), 3, dict(ITEM))
    mirror.handled(7)

    def half_then_fail(value: Any, file: Any, **options: Any) -> None:
        file.write('{"owner_id": 42, "offs')
        raise OSError("no space left on device")

    monkeypatch.setattr(state.json, "dump", half_then_fail)
    with pytest.raises(OSError, match="no space"):
        state.save(mirror, tmp_path / "state.json")
    monkeypatch.undo()
    loaded = state.load(tmp_path / "state.json", OWNER)
    assert (loaded.offset, sorted(loaded.items)) == (6, [1])


def test_the_file_is_synced_then_renamed_then_its_directory_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(state.os, "fsync", lambda fd: calls.append(f"fsync {Path(f'/proc/self/fd/{fd}').resolve()}")
                        or real_fsync(fd))  # fmt: skip
    monkeypatch.setattr(state.os, "replace", lambda src, dst: calls.append(f"replace {Path(dst)}")
                        or real_replace(src, dst))  # fmt: skip
    built(tmp_path)
    assert calls == [f"fsync {tmp_path / '.state.json.tmp'}", f"replace {tmp_path / 'state.json'}", f"fsync {tmp_path}"]


def test_after_a_restart_an_offset_handled_is_skipped_and_one_past_a_gap_refused(tmp_path: Path) -> None:
    built(tmp_path)
    mirror = state.load(tmp_path / "state.json", OWNER)
    assert not mirror.unhandled(5)
    assert not mirror.unhandled(6)
    assert mirror.unhandled(7)
    with pytest.raises(state.Gap, match="offset 9 follows 6"):
        mirror.unhandled(9)


def test_after_a_restart_an_event_applied_before_is_known(tmp_path: Path) -> None:
    built(tmp_path)
    mirror = state.load(tmp_path / "state.json", OWNER)
    assert not mirror.first_time(uuid.UUID(int=2))  # the update, repeated by the log at a later offset
    assert mirror.first_time(uuid.UUID(int=9))


def test_the_state_of_another_owner_is_refused(tmp_path: Path) -> None:
    built(tmp_path)
    with pytest.raises(ValueError, match="holds the mirror of owner 42, not of 7"):
        state.load(tmp_path / "state.json", 7)


def test_the_saver_writes_what_changed_and_waits_longer_when_writing_is_slow(tmp_path: Path) -> None:
    mirror = state.Mirror(OWNER)
    saver = state.Saver(mirror, tmp_path / "state.json", interval_s=0.2)
    saver.save_if_changed()
    assert not saver.path.exists()  # nothing changed
    mirror.handled(0)
    saver.save_if_changed()
    assert state.load(saver.path, OWNER).offset == 0
    assert saver.pause_s() == 0.2
    saver.last_took_s = 0.1
    assert saver.pause_s() == pytest.approx(0.9)  # saving at most a tenth of the time


@st.composite
def logs(draw: st.DrawFn) -> list[Entry]:
    """Events of a few items in a possible order (created, updated, deleted, never recreated), some
    repeated later on, as a relay that republishes appends them again."""
    entries: list[Entry] = []
    live: set[int] = set()
    created: set[int] = set()
    for n, (kind, item) in enumerate(draw(st.lists(st.tuples(st.sampled_from(["create", "update", "delete"]),
                                                              st.integers(1, 4)), max_size=30))):  # fmt: skip
        if (kind == "create") == (item not in created) and (kind == "create" or item in live):
            entries.append((kind, item, uuid.UUID(int=n), f"t{n}"))
            created.add(item)
            (live.add if kind != "delete" else live.discard)(item)
    for original, later in draw(st.lists(st.tuples(st.integers(0, 29), st.integers(0, 5)), max_size=8)):
        if original < len(entries):
            at = entries.index(entries[original]) + 1 + later
            entries.insert(min(at, len(entries)), entries[original])
    return entries


def applied_once(log: list[Entry]) -> tuple[dict[int, str], dict[int, int]]:
    """Titles and versions of the live items, each event applied once at its first occurrence."""
    titles: dict[int, str] = {}
    versions: dict[int, int] = {}
    seen: set[uuid.UUID] = set()
    for kind, item, event_id, title in log:
        if event_id in seen:
            continue
        seen.add(event_id)
        if kind == "delete":
            del titles[item], versions[item]
        else:
            titles[item], versions[item] = title, versions.get(item, 0) + 1
    return titles, versions


def follow(log: list[Entry], path: Path, saves: set[int], kills: set[int]) -> bool:
    """The follower's loop over the log from its saved state: False if killed (the kill is used up)."""
    mirror = state.load(path, OWNER)
    for offset in range(0 if mirror.offset is None else mirror.offset + 1, len(log)):
        if offset in kills:
            kills.discard(offset)
            return False
        kind, item, event_id, title = log[offset]
        if mirror.unhandled(offset) and mirror.first_time(event_id):
            if kind == "delete":
                mirror.drop(event_id, item)
            elif kind == "update":
                mirror.merge(event_id, item, {"title": title})
            else:
                mirror.put(event_id, item, {"title": title})
        mirror.handled(offset)
        if offset in saves:
            state.save(mirror, path)
    state.save(mirror, path)
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=logs(), data=st.data())
def test_killed_anywhere_over_a_log_with_repeats_each_event_is_applied_once(
    tmp_path: Path, log: list[Entry], data: st.DataObject
) -> None:
    path = tmp_path / f"{uuid.uuid4()}.json"
    offsets = st.sets(st.integers(0, max(len(log) - 1, 0)))
    saves, kills = data.draw(offsets, label="saved after"), data.draw(offsets, label="killed before")
    while not follow(log, path, saves, kills):
        pass
    mirror = state.load(path, OWNER)
    titles, versions = applied_once(log)
    assert {item: fields["title"] for item, fields in mirror.items.items()} == titles
    assert mirror.versions == versions
    assert mirror.offset == (len(log) - 1 if log else None)
