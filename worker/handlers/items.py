"""item.create / item.update / item.delete: the worker checks ownership itself."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.commands import CreateItem, DeleteItem, UpdateItem
from shared.contracts.outcomes import OutcomeCode
from shared.etag import item_etag, matches
from shared.models import CommandStatus
from worker import repository
from worker.authorization import may_act_for
from worker.envelope import Envelope
from worker.failures import for_caller, for_operator, refusal
from worker.handlers.result import Result, applied, rejected
from worker.transient import is_transient

NOT_FOUND = "no such item"


async def create_items(conn: AsyncConnection, envelopes: Sequence[Envelope[CreateItem]]) -> list[Result]:
    """A run of item.create commands: one owner lookup and one statement for all of them.

    On PostgreSQL that statement answers each row, its id or why the database refused it (migration
    0010), so a refused row is dead-lettered alone and its run still commits. Elsewhere one multi-row
    INSERT. A statement that fails for good (on PostgreSQL, only with an error its call does not
    catch) sends the run to create_items_one_by_one.
    """
    results, rows = await _accepted(conn, envelopes)
    values = iter(rows)
    if conn.dialect.name == "postgresql":
        inserted = iter(await repository.insert_items_answering_each(conn, rows))
        return [result or _inserted(next(inserted), next(values)) for result in results]
    ids = iter(await repository.insert_items(conn, rows))
    return [result or applied(OutcomeCode.CREATED, next(ids), next(values)) for result in results]


async def create_items_one_by_one(conn: AsyncConnection, envelopes: Sequence[Envelope[CreateItem]]) -> list[Result]:
    """A run whose statement failed for good: each command under a savepoint of its own, so that only
    the failing ones are dead-lettered (on PostgreSQL create_items already answers each refused row;
    this is for what its call does not catch)."""
    results, _ = await _accepted(conn, envelopes)
    return [result or (await _one_alone(conn, envelopes[n])) for n, result in enumerate(results)]


async def _accepted(
    conn: AsyncConnection, envelopes: Sequence[Envelope[CreateItem]]
) -> tuple[list[Result | None], list[dict[str, Any]]]:
    """A refusal for each command whose owner is missing, foreign or inactive; the rows of the others."""
    owners = await repository.get_users(conn, {envelope.body.owner_id for envelope in envelopes})
    results: list[Result | None] = []
    rows: list[dict[str, Any]] = []
    for envelope in envelopes:
        body = envelope.body
        owner = owners.get(body.owner_id)
        if owner is None or not may_act_for(envelope, body.owner_id):
            results.append(rejected(OutcomeCode.NOT_FOUND, "no such owner"))
        elif owner.is_active is False:
            results.append(rejected(OutcomeCode.OWNER_INACTIVE, "the owner is not active"))
        else:
            results.append(None)
            rows.append(body.model_dump(mode="json"))
    return results, rows


def _inserted(row: Any, values: dict[str, Any]) -> Result:
    if row.new_id is not None:
        return applied(OutcomeCode.CREATED, row.new_id, values)
    words = refusal(row.failed_state, constraint_name=row.failed_constraint) or "the database refused the command"
    reason = f"[{row.failed_state}] {row.failed_message}" + (
        f" DETAIL: {row.failed_detail}" if row.failed_detail else ""
    )
    return Result(CommandStatus.DEAD_LETTERED, OutcomeCode.DEAD_LETTERED, detail=words, reason=reason)


async def _one_alone(conn: AsyncConnection, envelope: Envelope[CreateItem]) -> Result:
    try:
        async with conn.begin_nested():
            return (await create_items(conn, [envelope]))[0]
    except Exception as error:
        if is_transient(error):
            raise
        reason = for_operator(error)
        return Result(CommandStatus.DEAD_LETTERED, OutcomeCode.DEAD_LETTERED, detail=for_caller(error), reason=reason)


async def _refusal(conn: AsyncConnection, envelope: Envelope[Any], item_id: int, if_match: str | None) -> Result | None:
    """Why this command may not touch the item (locked for the transaction), or None if it may."""
    item = await repository.get_item_for_update(conn, item_id)
    if item is None or not may_act_for(envelope, item.owner_id):
        return rejected(OutcomeCode.NOT_FOUND, NOT_FOUND)
    if not matches(if_match, item_etag(item)):
        return rejected(OutcomeCode.PRECONDITION_FAILED, "the item changed since that ETag", item_id)
    return None


async def update_item(conn: AsyncConnection, envelope: Envelope[UpdateItem]) -> Result:
    body = envelope.body
    if refusal := await _refusal(conn, envelope, body.item_id, body.if_match):
        return refusal
    values = body.model_dump(mode="json", exclude_unset=True, exclude={"item_id", "if_match"})
    if values:
        await repository.update_item(conn, body.item_id, values)
    return applied(OutcomeCode.UPDATED, body.item_id, values)


async def delete_item(conn: AsyncConnection, envelope: Envelope[DeleteItem]) -> Result:
    body = envelope.body
    if refusal := await _refusal(conn, envelope, body.item_id, body.if_match):
        return refusal
    await repository.delete_item(conn, body.item_id)
    return applied(OutcomeCode.DELETED, body.item_id, {})
