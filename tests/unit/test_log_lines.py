"""A per-request log line is scrubbed however it is written: its fast path (render, then look for the
scrubber's words) gives the line that scrubbing every field gives, for any fields."""

import json
from typing import Any

import pydantic_core
from hypothesis import example, given
from hypothesis import strategies as st

from shared.logging import REDACTED, _scrub, render_line

SECRETS = [
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    "Bearer abc.def",
    "bEaReR\tx",
    "amqp://svc:s3cret@broker:5672/",
    "postgresql+asyncpg://u:pw@db/x",
]
KEYS = ["request_id", "method", "route", "password", "Authorization", "X-Token", "ſecret", "cooKie", "jwt", "k"]

text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(SECRETS),
    st.builds(lambda a, secret, b: a + secret + b, st.text(max_size=5), st.sampled_from(SECRETS), st.text(max_size=5)),
)
values = st.recursive(
    st.one_of(text, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner),
    max_leaves=8,
)
fields = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), values, max_size=6)


@given(fields)
@example({"ſecret": "x"})  # long s: the key pattern matches it (re.IGNORECASE), str.lower() leaves it
@example({"to\u212aen": "x"})  # a Kelvin sign: the key pattern takes it for a k
def test_a_line_is_what_scrubbing_every_field_makes_of_it(line: dict[str, Any]) -> None:
    assert json.loads(render_line(line)) == json.loads(pydantic_core.to_json(_scrub(line), fallback=str))


@given(st.sampled_from(SECRETS), st.sampled_from(KEYS[:3]))
def test_no_secret_reaches_a_line_in_a_field_that_looks_harmless(secret: str, key: str) -> None:
    rendered = render_line({"event": "request", key: f"x {secret} y"})
    assert REDACTED in rendered
    for part in ("c2lnbmF0dXJl", "aGFzaA", "abc.def", "s3cret", ":pw@"):
        assert part not in rendered


def test_a_plain_access_line_is_left_as_it_is() -> None:
    line = {"event": "request", "route": "/api/v1/items/{item_id}", "status": 200, "ms": 1.5}
    assert json.loads(render_line(line)) == line
