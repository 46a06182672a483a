"""Who calls: the user of a valid access token, checked against the database (gateway/recent_users.py caches it)."""

import jwt

from gateway import repository
from gateway.problems import Problem
from gateway.repository import UserRecord
from gateway.security import password_stamp, subject_of
from gateway.services import Services

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def caller(services: Services, access_token: str, token: int | None) -> UserRecord:
    """The caller: a valid token of a user who exists, is active and has the password the token was
    issued under (a deleted user's token fails, and so do older tokens after a password change)."""
    try:
        subject = subject_of(access_token, services.settings)
    except jwt.InvalidTokenError:
        raise Problem(401, "invalid or expired access token", headers=UNAUTHORIZED) from None
    user = services.users.get(subject.user_id) if token is None else None
    if user is None:
        user = await services.reads.find(token, lambda conn: repository.get_user(conn, subject.user_id))
        if user is None or user.is_active is False:
            raise Problem(401, "invalid or expired access token", headers=UNAUTHORIZED)
        services.users.remember(user)
    if password_stamp(user.hashed_password, services.settings) != subject.password_stamp:
        raise Problem(401, "invalid or expired access token (the password changed)", headers=UNAUTHORIZED)
    return user
