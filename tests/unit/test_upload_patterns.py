"""The upload body patterns of the OpenAPI document say exactly which files the importer reads."""

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.routes.imports import UPLOAD_PATTERNS
from shared.importer import CONTENT_TYPES, CSV_TYPE, JSONL_TYPE, SourceError, count

SAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def importable(tmp_path: Path, media_type: str, body: str) -> bool:
    fmt = CONTENT_TYPES[media_type]
    path = tmp_path / f"upload.{fmt.value}"
    path.write_text(body, encoding="utf-8", newline="")
    try:
        count(path, fmt)
    except SourceError:
        return False
    return True


@pytest.mark.parametrize("media_type", [CSV_TYPE, JSONL_TYPE])
@SAMPLES
@given(data=st.data())
def test_every_body_the_pattern_admits_is_importable(tmp_path: Path, media_type: str, data: st.DataObject) -> None:
    body = data.draw(st.from_regex(UPLOAD_PATTERNS[media_type], fullmatch=True, alphabet=st.characters(codec="utf-8")))
    assert importable(tmp_path, media_type, body), repr(body)


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        (CSV_TYPE, ""),
        (CSV_TYPE, "title\n"),
        (CSV_TYPE, "title\n\n\n"),
        (CSV_TYPE, "name\nBuy flour\n"),
        (CSV_TYPE, "title,title\nx,y\n"),
        (JSONL_TYPE, ""),
        (JSONL_TYPE, " \n\t\r\n\u3000"),
    ],
)
def test_what_the_pattern_refuses_the_importer_refuses(tmp_path: Path, media_type: str, body: str) -> None:
    assert re.search(UPLOAD_PATTERNS[media_type], body) is None
    assert not importable(tmp_path, media_type, body)
