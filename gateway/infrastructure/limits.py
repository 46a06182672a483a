"""Limits at the gateway's edge: request body size per route, and rate limits per client and caller.

Rate limits are GCRA token buckets in memory (`Rate`): O(1) per request, one float per key, no
thread. Each gateway process counts on its own, so N processes allow up to N times the configured
rate (README, "Security").
"""

import collections
import contextlib
import math
import time
from collections.abc import Callable, Iterator

import limits
from fastapi import Request
from starlette.types import Scope

from gateway.http.problems import Problem
from shared.settings import Settings

LOGIN_PATH = "/api/v1/login/access-token"
SIGNUP_PATH = "/api/v1/users"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def body_caps(settings: Settings) -> dict[str, int]:
    """Path prefix -> its own body cap; every other route gets MAX_BODY_BYTES (the hook for uploads)."""
    return {"/api/v1/imports": settings.max_import_bytes}


def body_cap(path: str, settings: Settings, caps: dict[str, int] | None = None) -> int:
    for prefix, cap in (caps if caps is not None else body_caps(settings)).items():
        if path == prefix or path.startswith(prefix + "/"):
            return cap
    return settings.max_body_bytes


def client_address(scope: Scope, trusted_hops: int) -> str:
    """The caller's address: the socket peer, or with N trusted proxies the Nth X-Forwarded-For from the right.

    Each trusted proxy appends the peer it saw, so entries further left are client-supplied and
    never trusted. A request with fewer entries than proxies did not come through them all.
    """
    peer = scope.get("client")
    address = str(peer[0]) if peer else "unknown"
    if trusted_hops <= 0:
        return address
    forwarded = [
        entry.strip()
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
        for entry in value.decode("latin-1").split(",")
        if entry.strip()
    ]
    return forwarded[-trusted_hops] if len(forwarded) >= trusted_hops else address


class Throttled(Problem):
    """429 with Retry-After (whole seconds, at least 1)."""

    def __init__(self, retry_after_s: float, what: str) -> None:
        seconds = str(max(1, math.ceil(retry_after_s)))
        super().__init__(429, f"too many {what}; retry after {seconds} s", headers={"Retry-After": seconds})


class Rate:
    """`amount` requests per `period` seconds per key, as GCRA (generic cell rate algorithm).

    Each key keeps only its theoretical arrival time (TAT): up to `amount` requests may come at
    once, then one per emission interval `period / amount`. Keys whose TAT has passed are back to a
    full bucket, so a sweep drops them once the table has doubled since the last one (amortised
    O(1)). Not locked: every hit runs on the gateway's event loop thread.
    """

    MIN_SWEEP = 1024  # keys before the first sweep

    def __init__(self, notation: str, clock: Callable[[], float] = time.monotonic) -> None:
        item = limits.parse(notation)  # "50/second", "10 per minute", "5/2 hours"
        self.amount, self.period = item.amount, float(item.get_expiry())
        self.interval = self.period / self.amount
        self._clock = clock
        self._tats: dict[tuple[str, ...], float] = {}
        self._sweep_above = self.MIN_SWEEP

    def hit(self, *key: str) -> float:
        """Count one request for `key`: 0 when allowed, else the seconds until one would be (not counted)."""
        now = self._clock()
        tat = max(self._tats.get(key, now), now) + self.interval
        late = tat - now - self.period
        if late > 1e-6:  # float rounding must not refuse the last request of a full burst
            return late
        self._tats[key] = tat
        if len(self._tats) > self._sweep_above:
            self._tats = {other: due for other, due in self._tats.items() if due > now}
            self._sweep_above = max(self.MIN_SWEEP, 2 * len(self._tats))
        return 0.0


class UploadSlots:
    """Imports under way per caller: each holds a spooled file and publishes for as long as it lasts."""

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._active: collections.Counter[int] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, caller: int) -> Iterator[None]:
        """Take one of the caller's slots for the block; 429 when all are taken."""
        if self._active[caller] >= self.per_caller:
            raise Throttled(5, f"imports under way for this caller (at most {self.per_caller} at a time)")
        self._active[caller] += 1
        try:
            yield
        finally:
            self._active[caller] -= 1
            if not self._active[caller]:
                del self._active[caller]


class RateLimits:
    """Rate limits of one gateway process, keyed so nobody can lock a victim out."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.login_per_client = Rate(settings.login_rate_per_client, clock)
        self.login_per_account = Rate(settings.login_rate_per_account, clock)
        self.signup_per_client = Rate(settings.signup_rate_per_client, clock)
        self.write_per_caller = Rate(settings.write_rate_per_caller, clock)
        self.uploads = UploadSlots(settings.max_uploads_per_caller)

    def hit(self, rate: Rate, what: str, *key: str) -> None:
        """Count one request; raise Throttled when the bucket is empty."""
        retry_after = rate.hit(*key)
        if retry_after:
            raise Throttled(retry_after, what)

    def login_account(self, client: str, email: str) -> None:
        """Per (client, email), never per email alone: an attacker elsewhere never throttles the victim.

        The per-client login limit is counted at the edge (gateway/edge/middleware.py), before the form is parsed.
        """
        self.hit(self.login_per_account, "login attempts for this account", "login-account", client, email)


def get_limits(request: Request) -> RateLimits:
    limits_: RateLimits = request.app.state.services.limits
    return limits_
