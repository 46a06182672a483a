"""user.create / user.update / user.delete."""

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.commands import CreateUser, DeleteUser, UpdateUser
from shared.contracts.outcomes import OutcomeCode
from worker import repository
from worker.authorization import may_act_for, may_create_users, may_deactivate
from worker.envelope import Envelope
from worker.handlers.result import Result, applied, audit_changes, rejected


async def create_user(conn: AsyncConnection, envelope: Envelope[CreateUser]) -> Result:
    body = envelope.body
    if not may_create_users(envelope):
        return rejected(OutcomeCode.FORBIDDEN, "this actor may not create users")
    if await repository.email_taken(conn, body.email):
        return rejected(OutcomeCode.EMAIL_TAKEN, "a user with this email already exists")
    values = body.model_dump()
    user_id = await repository.insert_user(conn, values)
    return applied(OutcomeCode.CREATED, user_id, audit_changes(values))


async def update_user(conn: AsyncConnection, envelope: Envelope[UpdateUser]) -> Result:
    body = envelope.body
    user = await repository.get_user(conn, body.user_id)
    if user is None or not may_act_for(envelope, body.user_id):
        return rejected(OutcomeCode.NOT_FOUND, "no such user")
    if body.if_password_hash is not None and user.hashed_password != body.if_password_hash:
        return rejected(OutcomeCode.PRECONDITION_FAILED, "the password changed since it was read")
    values = body.model_dump(exclude_unset=True, exclude={"user_id", "if_password_hash"})
    if "is_active" in values and not may_deactivate(envelope):
        return rejected(OutcomeCode.FORBIDDEN, "this actor may not change is_active")
    if "email" in values and await repository.email_taken(conn, values["email"]):
        return rejected(OutcomeCode.EMAIL_TAKEN, "a user with this email already exists")
    if values:
        await repository.update_user(conn, body.user_id, values)
    return applied(OutcomeCode.UPDATED, body.user_id, audit_changes(values))


async def delete_user(conn: AsyncConnection, envelope: Envelope[DeleteUser]) -> Result:
    body = envelope.body
    user = await repository.get_user(conn, body.user_id)
    if user is None or not may_act_for(envelope, body.user_id):
        return rejected(OutcomeCode.NOT_FOUND, "no such user")
    await repository.delete_user(conn, body.user_id)  # items go with it: ON DELETE CASCADE
    return applied(OutcomeCode.DELETED, body.user_id, {})
