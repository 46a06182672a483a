"""item.create / item.update / item.delete: the worker checks ownership itself."""

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.commands import CreateItem, DeleteItem, UpdateItem
from shared.contracts.outcomes import OutcomeCode
from worker import repository
from worker.authorization import may_act_for
from worker.envelope import Envelope
from worker.handlers.result import Result, applied, rejected

NOT_FOUND = "no such item"


async def create_item(conn: AsyncConnection, envelope: Envelope) -> Result:
    body = envelope.body
    assert isinstance(body, CreateItem)
    if not may_act_for(envelope, body.owner_id):
        return rejected(OutcomeCode.NOT_FOUND, "no such owner")
    owner = await repository.get_user(conn, body.owner_id)
    if owner is None:
        return rejected(OutcomeCode.NOT_FOUND, "no such owner")
    if owner.is_active is False:
        return rejected(OutcomeCode.OWNER_INACTIVE, "the owner is not active")
    values = body.model_dump(mode="json")
    item_id = await repository.insert_item(conn, values)
    return applied(OutcomeCode.CREATED, item_id, values)


async def update_item(conn: AsyncConnection, envelope: Envelope) -> Result:
    body = envelope.body
    assert isinstance(body, UpdateItem)
    item = await repository.get_item_for_update(conn, body.item_id)
    if item is None or not may_act_for(envelope, item.owner_id):
        return rejected(OutcomeCode.NOT_FOUND, NOT_FOUND)
    values = body.model_dump(mode="json", exclude_unset=True, exclude={"item_id"})
    if values:
        await repository.update_item(conn, body.item_id, values)
    return applied(OutcomeCode.UPDATED, body.item_id, values)


async def delete_item(conn: AsyncConnection, envelope: Envelope) -> Result:
    body = envelope.body
    assert isinstance(body, DeleteItem)
    item = await repository.get_item_for_update(conn, body.item_id)
    if item is None or not may_act_for(envelope, item.owner_id):
        return rejected(OutcomeCode.NOT_FOUND, NOT_FOUND)
    await repository.delete_item(conn, body.item_id)
    return applied(OutcomeCode.DELETED, body.item_id, {})
