"""One retry policy for the loops that wait for the broker or a database to come back: capped
exponential backoff, for as long as the loop keeps asking.

Ours rather than tenacity or stamina: each of these loops retries for ever (until it succeeds or its
task is cancelled), writes its own log line and decides itself which errors end it, so a library's
decorator would remove none of that code, only hide the loop; stamina's defaults (10 attempts, 45 s,
jitter) would each have to be turned off. What the loops shared, and wrote out each time, is this.
"""

from collections.abc import Iterator


def backoff(first_s: float = 0.5, cap_s: float = 10.0) -> Iterator[float]:
    """The pauses between attempts: first_s, doubling each time up to cap_s, then cap_s for ever."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, cap_s)
