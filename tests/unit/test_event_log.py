"""Where a log reader starts, and which events `events tail` shows: pure functions, every case pinned."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cli.events import about_resource, named
from shared.event_log import stream_start


@pytest.mark.parametrize("word", ["first", "last", "next"])
def test_a_named_place_is_passed_as_it_is(word: str) -> None:
    assert stream_start(word) == word


def test_digits_are_an_offset() -> None:
    assert stream_start("0") == 0
    assert stream_start("4182") == 4182


def test_a_timestamp_keeps_its_zone_and_is_utc_without_one() -> None:
    assert stream_start("2026-12-01T10:00:00+02:00") == datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    assert stream_start("2026-12-01T08:00:00Z") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert stream_start("2026-12-01 08:00") == datetime(2026, 12, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "-1", "1.5", "", "FIRST"])
def test_anything_else_is_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="not first, last, next, an offset or an ISO 8601 timestamp"):
        stream_start(text)


def test_a_resource_is_its_events_and_the_import_that_created_it() -> None:
    about_7 = about_resource(7)
    assert about_7({"name": "item.updated", "resource_id": 7, "data": {}})
    assert about_7({"name": "item.imported", "resource_id": 3, "data": {"items": [{"id": 6}, {"id": 7}]}})
    assert not about_7({"name": "item.imported", "resource_id": 3, "data": {"items": [{"id": 8}]}})
    assert not about_7({"name": "item.created", "resource_id": 70, "data": {}})


def test_names_match_a_shell_pattern() -> None:
    assert named("item.*")({"name": "item.deleted"})
    assert not named("item.*")({"name": "user.deleted"})
    assert named("user.updated")({"name": "user.updated"})
    assert not named("user.update")({"name": "user.updated"})
