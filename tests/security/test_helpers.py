"""The attack tests' own tools fail loudly: a lookup that fails is never read as "nothing there"."""

import uuid

import httpx
import pytest

from tests.security.helpers import peek_queue


def test_peeking_into_a_queue_that_cannot_be_read_fails(vhost: str) -> None:
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        peek_queue(f"test.no-such-queue.{uuid.uuid4().hex}")
