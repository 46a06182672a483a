"""Every command the worker knows, in one table keyed by its name (the routing key).

An entry says which body each accepted schema version has (shared/contracts/versions.py `BODIES`,
with the policy), which handler applies it, whether a run of consecutive new commands of that name is handed
to the handler at once (one multi-row INSERT), and which event an applied command emits. A command
travels: consumer → decode (the body of its version, upcast) → the unit of work → its entry's handler.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.base import CommandBody
from shared.contracts.commands import SCHEMA_VERSION, CommandName
from shared.contracts.events import EventName
from shared.contracts.versions import BODIES
from worker.envelope import Envelope
from worker.handlers import imports, items, users
from worker.handlers.result import Result

BodyT = TypeVar("BodyT", bound=CommandBody)
Handler = Callable[[AsyncConnection, Sequence[Envelope[BodyT]]], Awaitable[list[Result]]]


@dataclass(frozen=True)
class Command(Generic[BodyT]):
    """How one command name is read, applied and announced."""

    bodies: Mapping[int, type[CommandBody]]  # schema version -> the body model of that version
    handle: Handler[BodyT]  # a run of envelopes -> one Result each, in order; never commits
    event: EventName | None = None  # emitted (through the outbox) by each applied command
    batches: bool = False  # consecutive new commands of this name reach `handle` as one run
    isolate: Handler[BodyT] | None = None  # a run whose `handle` failed for good: each command alone

    @property
    def body(self) -> type[CommandBody]:
        """The current version's body: what every handler receives (older ones are upcast)."""
        return self.bodies[SCHEMA_VERSION]

    def read(self, version: int, body: bytes) -> CommandBody:
        """Validate `body` against its version's schema, then upcast it (only the fields it set stay set)."""
        parsed = self.bodies[version].model_validate_json(body)
        if isinstance(parsed, self.body):
            return parsed
        return self.body.model_validate(parsed.model_dump(exclude_unset=True))


def one_at_a_time(handle: Callable[[AsyncConnection, Envelope[BodyT]], Awaitable[Result]]) -> Handler[BodyT]:
    """A handler of one command as a handler of runs (the runs of a non-batching command hold one)."""

    async def handle_run(conn: AsyncConnection, run: Sequence[Envelope[BodyT]]) -> list[Result]:
        return [await handle(conn, envelope) for envelope in run]

    return handle_run


CATALOGUE: dict[CommandName, Command[Any]] = {
    CommandName.USER_CREATE: Command(
        BODIES[CommandName.USER_CREATE], one_at_a_time(users.create_user), EventName.USER_CREATED
    ),
    CommandName.USER_UPDATE: Command(
        BODIES[CommandName.USER_UPDATE], one_at_a_time(users.update_user), EventName.USER_UPDATED
    ),
    CommandName.USER_DELETE: Command(
        BODIES[CommandName.USER_DELETE], one_at_a_time(users.delete_user), EventName.USER_DELETED
    ),
    CommandName.ITEM_CREATE: Command(
        BODIES[CommandName.ITEM_CREATE],
        items.create_items,
        EventName.ITEM_CREATED,
        batches=True,
        isolate=items.create_items_one_by_one,
    ),  # fmt: skip
    CommandName.ITEM_UPDATE: Command(
        BODIES[CommandName.ITEM_UPDATE], one_at_a_time(items.update_item), EventName.ITEM_UPDATED
    ),
    CommandName.ITEM_DELETE: Command(
        BODIES[CommandName.ITEM_DELETE], one_at_a_time(items.delete_item), EventName.ITEM_DELETED
    ),
    CommandName.ITEM_IMPORT: Command(
        BODIES[CommandName.ITEM_IMPORT], one_at_a_time(imports.import_items), EventName.ITEM_IMPORTED
    ),
}
