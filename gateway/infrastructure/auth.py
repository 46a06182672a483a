"""Who calls: the user of a valid access token, checked against the database (recent_users.py caches it)."""

import jwt

from gateway.http.problems import Problem
from gateway.infrastructure import repository
from gateway.infrastructure.consistency import Reads
from gateway.infrastructure.recent_users import RecentUsers
from gateway.infrastructure.repository import UserRecord
from gateway.infrastructure.security import password_stamp, subject_of
from shared.settings import Settings

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def caller(
    access_token: str, token: int | None, *, settings: Settings, users: RecentUsers, reads: Reads
) -> UserRecord:
    """The caller: a valid token of a user who exists, is active and has the password the token was
    issued under (a deleted user's token fails, and so do older tokens after a password change).

    It takes the three things it uses, not the whole Services record: what sits below the operations
    then does not stand on everything the lifespan builds (the import chain stays short)."""
    try:
        subject = subject_of(access_token, settings)
    except jwt.InvalidTokenError:
        raise Problem(401, "invalid or expired access token", headers=UNAUTHORIZED) from None
    user = users.get(subject.user_id) if token is None else None
    if user is None:
        user = await reads.find(token, lambda conn: repository.get_user(conn, subject.user_id))
        if user is None or user.is_active is False:
            raise Problem(401, "invalid or expired access token", headers=UNAUTHORIZED)
        users.remember(user)
    if password_stamp(user.hashed_password, settings) != subject.password_stamp:
        raise Problem(401, "invalid or expired access token (the password changed)", headers=UNAUTHORIZED)
    return user
