"""Passwords (argon2id, hashed off the event loop, bounded) and access tokens (JWT, HS256 pinned)."""

import time
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from shared.settings import Settings

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


def create_access_token(user_id: int, settings: Settings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_expire_minutes),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


_verified: dict[tuple[str, str], tuple[int, float]] = {}  # (token, secret) -> (user id, exp)
VERIFIED_MAX = 10_000


def user_id_from_token(token: str, settings: Settings) -> int:
    """The user id of a valid token; raises jwt.InvalidTokenError for anything else.

    A token verified before is not verified again until it expires (the signature cannot change).
    """
    known = _verified.get((token, settings.secret_key))
    if known is not None and time.time() <= known[1] + CLOCK_LEEWAY_S:
        return known[0]
    user_id, expires = _verify_token(token, settings)
    if len(_verified) >= VERIFIED_MAX:
        _verified.clear()
    _verified[(token, settings.secret_key)] = (user_id, expires)
    return user_id


def _verify_token(token: str, settings: Settings) -> tuple[int, float]:
    claims = jwt.decode(
        token,
        settings.secret_key,
        algorithms=[ALGORITHM],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=CLOCK_LEEWAY_S,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    subject = str(claims["sub"])
    if not subject.isdigit():
        raise jwt.InvalidTokenError("sub is not a user id")
    return int(subject), float(claims["exp"])
