"""Passwords (argon2id, hashed off the event loop, bounded) and access tokens (JWT, HS256 pinned)."""

import base64
import functools
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from shared.settings import Settings

BEARER_KEY = "opengovfood.bearer"  # the request's bearer token, read once by gateway/edge/middleware.py (None: none)
AUTHORIZATION = b"authorization"
ALGORITHM = "HS256"  # pinned: a token naming another algorithm is refused
CLOCK_LEEWAY_S = 10

# OWASP minimum for argon2id: m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)


class Passwords:
    """argon2id hashing in worker threads, at most `max_concurrent` at a time (memory-bound)."""

    def __init__(self, max_concurrent: int) -> None:
        self._limiter = anyio.CapacityLimiter(max_concurrent)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=self._limiter)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Check a password; an unknown user costs the same time as a wrong password."""
        if hashed is None:
            self._dummy_hash = self._dummy_hash or await self.hash("no-such-user-timing-equaliser")
            hashed = self._dummy_hash
            password = password + "\x00"  # never matches the dummy
        return await anyio.to_thread.run_sync(_verify, hashed, password, limiter=self._limiter)

    @staticmethod
    def needs_rehash(hashed: str) -> bool:
        """True when a stored hash was made with other parameters than ours (then rehash on login)."""
        try:
            return _hasher.check_needs_rehash(hashed)
        except InvalidHashError:
            return True


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def password_stamp(hashed_password: str, settings: Settings) -> str:
    """A token's tie to the password it was issued under: a keyed digest of the stored argon2id hash
    (never of the password). A new password makes a new hash, and every older token stops working."""
    return _stamp(hashed_password, settings.secret_key)


@functools.lru_cache(maxsize=10_000)  # asked on every request, of the same few hashes
def _stamp(hashed_password: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), hashed_password.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def create_access_token(user_id: int, hashed_password: str, settings: Settings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "pwd": password_stamp(hashed_password, settings),
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_expire_minutes),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


@dataclass(frozen=True)
class Subject:
    """Who a valid token speaks for, and under which password it was issued."""

    user_id: int
    password_stamp: str


_verified: dict[tuple[str, str], tuple[Subject, float]] = {}  # (token, secret) -> (subject, exp)
VERIFIED_MAX = 10_000


def subject_of(token: str, settings: Settings) -> Subject:
    """The subject of a valid token; raises jwt.InvalidTokenError for anything else.

    A token verified before is not verified again until it expires (the signature cannot change).
    """
    known = _verified.get((token, settings.secret_key))
    if known is not None and time.time() <= known[1] + CLOCK_LEEWAY_S:
        return known[0]
    subject, expires = _verify_token(token, settings)
    if len(_verified) >= VERIFIED_MAX:
        _verified.clear()
    _verified[(token, settings.secret_key)] = (subject, expires)
    return subject


def _verify_token(token: str, settings: Settings) -> tuple[Subject, float]:
    claims = jwt.decode(
        token,
        settings.secret_key,
        algorithms=[ALGORITHM],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=CLOCK_LEEWAY_S,
        options={"require": ["exp", "iat", "sub", "iss", "aud", "pwd"]},
    )
    subject = str(claims["sub"])
    if not subject.isdigit() or not 0 < int(subject) < 2**31:
        raise jwt.InvalidTokenError("sub is not a user id")
    return Subject(int(subject), str(claims["pwd"])), float(claims["exp"])


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None: no header, another scheme, empty)."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
