"""The users this gateway process verified a moment ago: spares the replica a lookup per request."""

import random
import time

from gateway.infrastructure.repository import UserRecord

MAX_ENTRIES = 10_000


class RecentUsers:
    """Active users seen within `ttl_s`; a deletion or deactivation shows after at most ttl_s.

    A request with an X-Consistency-Token never uses it: it reads at least up to that token.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[int, tuple[float, UserRecord]] = {}

    def get(self, user_id: int) -> UserRecord | None:
        entry = self._seen.get(user_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def remember(self, user: UserRecord) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._seen) >= MAX_ENTRIES:
            self._seen.clear()
        # Expiries spread over the last tenth of the TTL: callers first seen together (a burst, a
        # restart) would otherwise all be looked up again in the same instant.
        self._seen[user.id] = (time.monotonic() + self.ttl_s * (0.9 + random.random() / 10), user)
