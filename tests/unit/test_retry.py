"""The one retry policy: capped exponential backoff."""

from itertools import islice

from shared.retry import backoff


def test_the_pauses_double_up_to_the_cap_then_stay_there() -> None:
    assert list(islice(backoff(), 7)) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert list(islice(backoff(0.05, 5.0), 9))[-2:] == [5.0, 5.0]
