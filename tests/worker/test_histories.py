"""Generated histories: the worker's pipeline and unit of work against a reference model of itself.

Hypothesis writes the history — every command name (item.create/update/delete/import, user.create/
update/delete) for 1–4 owners, valid and refused (a trigger
refuses one title until it is lifted), copies of earlier command ids (the same body or another, right
after or later), Idempotency-Keys reused with another body, an If-Match that no longer matches,
poison messages — then cuts each partition's deliveries into batches at random, hands random sets of
partitions' batches over together (group commit), and injects one fault a round: a transient error
at any statement, a lost COMMIT acknowledgement, a crash between commit and ack (the batch comes
back, a new worker takes over), a failed event, reply or dead-letter publish after the commit.

Checked after each round and at the end, against tests/support/worker_model.py: every delivery's
answer is the model's; nothing is acknowledged before its outcome is recorded; every command id has
one inbox row, the model's; the users and items are the model's; each event is published at least
once, deduplicable by event_id, in commit order per owner, and none is left in the outbox.

The same histories run on SQLite and on PostgreSQL (where item.create takes migration 0010's
function), under the worker's least-privilege role. `make test` runs a fixed seed; `make soak`
(HISTORIES=N) many more.
"""

import asyncio
import hashlib
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.commands import (
    CommandName,
    CreateItem,
    CreateUser,
    DeleteItem,
    DeleteUser,
    UpdateItem,
    UpdateUser,
)
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.contracts.headers import HEADER_ACTOR, HEADER_FINGERPRINT, HEADER_IDEMPOTENCY_KEY
from shared.contracts.imports import ImportChunk, ImportRow
from shared.db import create_engine
from shared.models import Command, Item, OutboxEvent, User
from shared.settings import get_settings
from shared.topology import DEAD_LETTER_EXCHANGE_NAME, GATEWAY_REPLY_PREFIX
from tests import settings as test_settings
from tests.support.database import alembic_config
from tests.support.embedded import HASH
from tests.support.scratch import grant_roles, recreate_database
from tests.support.worker_model import STALE_ETAG, WorkerModel
from worker.outbound import Outbound
from worker.pipeline import Pipeline
from worker.relay import PartitionRelay
from worker.transient import is_transient
from worker.unit_of_work import UnitOfWork

EXAMPLES = int(os.environ.get("HISTORIES", "60"))
PARTITIONS = 2
REFUSED = "refused by the database"
TITLES = ["soup", "bread", REFUSED]
FAULTS = ["none", "statement", "lost-commit-ack", "crash-before-ack", "event", "reply", "dead-letter", "dead-letter",
          "refused-once"]  # fmt: skip
TABLES = ["outbox", "command", "import_chunk", "import_job", "item", '"user"']
REPLY_TO = f"{GATEWAY_REPLY_PREFIX}5eed"


class InjectedFault(ConnectionError):
    """A fault the history injected (anything else that escapes is a failure of the test)."""


# ---- the machinery around the real pipeline: messages, a publisher, faults, a recording unit of work


@dataclass
class Message:
    """A delivery as the pipeline reads it (the attributes of aio-pika's incoming message it uses)."""

    routing_key: str
    message_id: str
    body: bytes
    headers: dict[str, Any]
    owner: int  # the owner index: its partition
    user_id: str = field(default_factory=lambda: get_settings().gateway_bus_user)
    reply_to: str | None = REPLY_TO
    correlation_id: str | None = None
    content_type: str = "application/json"
    timestamp: datetime | None = None
    priority: int | None = None


@dataclass
class Faults:
    statement_at: int | None = None  # the n-th statement from now raises a transient error
    refuse_outbox: bool = False  # the next outbox insert fails for good (no run to blame: each command alone)
    lost_commit_ack: bool = False
    publish: str | None = None  # "event" | "reply" | "dead-letter": the next such publish fails


class Publisher:
    """Records what the worker publishes, in order; fails the publish a fault names."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.events: list[tuple[str, uuid.UUID]] = []  # (event_id, command id)
        self.dead_letters: list[str] = []
        self.down: str | None = None

    async def publish(self, message: Any, *, exchange: str, routing_key: str, mandatory: bool = True) -> None:
        kind = {EVENTS_EXCHANGE_NAME: "event", DEAD_LETTER_EXCHANGE_NAME: "dead-letter"}.get(exchange, "reply")
        if self.faults.publish == kind:  # the channel drops: what is being published with it fails too
            self.faults.publish = None
            self.down = kind
            asyncio.get_running_loop().call_soon(setattr, self, "down", None)
        if self.down == kind:
            raise InjectedFault(f"the {kind} publish failed")
        if kind == "event":
            self.events.append((str(message.message_id), uuid.UUID(message.correlation_id)))
        elif kind == "dead-letter":
            self.dead_letters.append(str(message.message_id))


class RecordingUnitOfWork(UnitOfWork):
    """The real unit of work; each committed transaction is replayed on the model, whose answers each
    batch must get back."""

    def __init__(self, engine: AsyncEngine, model: WorkerModel, faults: Faults) -> None:
        super().__init__(engine)
        self.model = model
        self.faults = faults
        self.expected: dict[int, tuple[str, str]] = {}

    async def _attempt(self, envelopes: Any, *args: Any) -> Any:
        recorded = await super()._attempt(envelopes, *args)
        self.expected |= zip(map(id, envelopes), self.model.transaction(list(envelopes)), strict=True)
        if self.faults.lost_commit_ack:
            self.faults.lost_commit_ack = False
            raise OSError("the COMMIT's acknowledgement was lost")
        return recorded

    async def apply(self, envelopes: Any, relayed: Any = ()) -> Any:
        applied = await super().apply(envelopes, relayed)
        answers = [(o.status.value, o.code.value) for o in applied.outcomes]
        assert answers == [self.expected[id(envelope)] for envelope in envelopes]
        return applied


def failing_statements(engine: AsyncEngine, faults: Faults) -> None:
    """The statement a fault names raises what a dropped connection raises."""

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if faults.refuse_outbox and statement.startswith("INSERT INTO outbox"):
            faults.refuse_outbox = False
            raise RuntimeError("the outbox refused a row")
        if faults.statement_at is not None:
            faults.statement_at -= 1
            if faults.statement_at <= 0:
                faults.statement_at = None
                raise OSError("the database connection dropped")

    event.listen(engine.sync_engine, "before_cursor_execute", before)


# ---- the history


@dataclass(frozen=True)
class Step:
    kind: str  # create | update | delete | import | user-create | user-update | user-delete | copy | key-reuse | poison
    owner: int = 0
    as_owner: bool = True  # else another user sends it
    item: int = 0  # update/delete: 0, 1 (the owner's items before the history) or 2 (no such item)
    title: str = "soup"
    stale: bool = False  # an If-Match that no longer matches
    keyed: bool = False  # with an Idempotency-Key
    fingerprinted: bool = True
    back: int = 1  # copy / key-reuse / import (when `again`): of the command this many steps back
    rows: tuple[str, ...] = ()  # import: the rows' titles
    again: bool = False  # import: an earlier chunk again, under a new command id
    same_body: bool = True  # copy: the same body, else another under the same id


def steps(owners: int) -> st.SearchStrategy[Step]:
    owner = st.integers(0, owners - 1)
    title = st.sampled_from(TITLES)
    return st.one_of(
        st.builds(Step, kind=st.just("create"), owner=owner, as_owner=st.booleans(), title=title, keyed=st.booleans(),
                  fingerprinted=st.booleans()),
        st.builds(Step, kind=st.just("update"), owner=owner, as_owner=st.booleans(), item=st.integers(0, 2),
                  title=title, stale=st.booleans(), keyed=st.booleans()),
        st.builds(Step, kind=st.just("delete"), owner=owner, item=st.integers(0, 2)),
        st.builds(Step, kind=st.just("import"), owner=owner, as_owner=st.booleans(),
                  rows=st.lists(title, min_size=1, max_size=3).map(tuple), again=st.booleans(), back=st.integers(1, 6)),
        st.builds(Step, kind=st.just("import"), owner=owner, rows=st.just(("soup", "bread"))),
        st.builds(Step, kind=st.just("user-update"), owner=owner, as_owner=st.booleans()),
        st.builds(Step, kind=st.just("user-create"), item=st.integers(0, 3)),  # item: which email
        st.builds(Step, kind=st.just("user-delete"), owner=owner),
        st.builds(Step, kind=st.just("copy"), back=st.integers(1, 8), same_body=st.booleans()),
        st.builds(Step, kind=st.just("copy"), back=st.integers(1, 3)),
        st.builds(Step, kind=st.just("key-reuse"), back=st.integers(1, 6), title=title),
        st.just(Step(kind="poison")),
        st.just(Step(kind="poison")),
    )  # fmt: skip


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[Step]]:
    owners = draw(st.integers(1, 4))
    return owners, draw(st.lists(steps(owners), min_size=1, max_size=40))


@dataclass
class World:
    """What the history's commands refer to: the owners' ids and each owner's two items."""

    users: list[int]
    items: list[list[int]]


def _body(step: Step, world: World) -> tuple[CommandName, Any]:
    user = world.users[step.owner]
    item = world.items[step.owner][step.item] if step.item < 2 else 2_000_000_000
    if step.kind == "create":
        return CommandName.ITEM_CREATE, CreateItem(owner_id=user, title=step.title)
    if step.kind == "update":
        return CommandName.ITEM_UPDATE, UpdateItem(
            item_id=item, title=step.title, if_match=STALE_ETAG if step.stale else None
        )
    if step.kind == "delete":
        return CommandName.ITEM_DELETE, DeleteItem(item_id=item)
    if step.kind == "import":
        rows = [ImportRow(row=n + 1, title=title) for n, title in enumerate(step.rows)]
        return CommandName.ITEM_IMPORT, ImportChunk(import_id=uuid.uuid4(), seq=0, total=1, owner_id=user, rows=rows)
    if step.kind == "user-create":  # a new email, or one an owner has
        email = f"owner{step.item}@example.org" if step.item < len(world.users) else f"new{step.item}@example.org"
        return CommandName.USER_CREATE, CreateUser(email=email, hashed_password=HASH, full_name="new")
    if step.kind == "user-update":
        return CommandName.USER_UPDATE, UpdateUser(user_id=user, full_name=f"name {uuid.uuid4().hex[:6]}")
    return CommandName.USER_DELETE, DeleteUser(user_id=user)


def _message(name: CommandName, body: Any, *, owner: int, actor: int, command_id: uuid.UUID,
             key: uuid.UUID | None, fingerprinted: bool) -> Message:  # fmt: skip
    data = body.model_dump_json(exclude_unset=True).encode()
    headers: dict[str, Any] = {HEADER_ACTOR: f"user:{actor}" if actor else "anonymous"}
    if fingerprinted:
        headers[HEADER_FINGERPRINT] = hashlib.sha256(data).hexdigest()[:32]
    if key is not None:
        headers[HEADER_IDEMPOTENCY_KEY] = str(key)
    return Message(name.value, str(command_id), data, headers, owner)


def deliveries(history: list[Step], world: World) -> list[Message]:
    """The messages the history publishes, in publication order."""
    sent: list[Message] = []
    keyed: list[Message] = []
    chunks: list[Message] = []
    for step in history:
        if step.kind == "poison":
            sent.append(Message("item.create", str(uuid.uuid4()), b"{not json", {}, 0))
        elif step.kind == "copy" and sent:
            original = sent[-min(step.back, len(sent))]
            body = original.body if step.same_body else original.body.replace(b"}", b', "description": "other"}', 1)
            if original.routing_key == "item.create" and original.body.startswith(b"{not"):
                body = original.body
            headers = dict(original.headers)
            if HEADER_FINGERPRINT in headers:
                headers[HEADER_FINGERPRINT] = hashlib.sha256(body).hexdigest()[:32]
            sent.append(Message(original.routing_key, original.message_id, body, headers, original.owner))
        elif step.kind == "key-reuse" and keyed:
            original = keyed[-min(step.back, len(keyed))]
            actor = int(original.headers[HEADER_ACTOR].split(":")[1])
            body = CreateItem(owner_id=actor, title=step.title)
            key = uuid.UUID(original.headers[HEADER_IDEMPOTENCY_KEY])
            sent.append(_message(CommandName.ITEM_CREATE, body, owner=original.owner, actor=actor,
                                 command_id=uuid.uuid4(), key=key, fingerprinted=True))  # fmt: skip
        elif step.kind == "import" and step.again and chunks:
            original = chunks[-min(step.back, len(chunks))]
            sent.append(replace(original, message_id=str(uuid.uuid4())))
        elif step.kind not in ("copy", "key-reuse"):
            name, body = _body(step, world)
            actor = world.users[step.owner] if step.as_owner else world.users[(step.owner + 1) % len(world.users)] + 1
            if name == CommandName.USER_CREATE:
                actor = 0  # anonymous: sign-up
            key = uuid.uuid4() if step.keyed else None
            message = _message(name, body, owner=step.owner, actor=actor, command_id=uuid.uuid4(), key=key,
                               fingerprinted=step.fingerprinted)  # fmt: skip
            sent.append(message)
            if key is not None:
                keyed.append(message)
            if name == CommandName.ITEM_IMPORT:
                chunks.append(message)
    return sent


# ---- the databases


@dataclass
class Database:
    engine: AsyncEngine  # as the worker connects (on PostgreSQL: its least-privilege role)
    admin: AsyncEngine  # resets the tables and installs the trigger
    refuse: list[str]  # SQL that makes the database refuse REFUSED
    lift: list[str]  # SQL that stops it
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        failing_statements(self.engine, self.faults)


SQLITE_REFUSAL = [
    f"CREATE TRIGGER refuse_{op.lower()} BEFORE {op} ON item WHEN NEW.title = '{REFUSED}' "
    f"BEGIN SELECT RAISE(ABORT, 'title refused'); END"
    for op in ("INSERT", "UPDATE")
]
POSTGRES_REFUSAL = [
    "CREATE OR REPLACE FUNCTION refuse_title() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF NEW.title = '{REFUSED}' THEN RAISE EXCEPTION 'title refused'; END IF; RETURN NEW; END $$",
    "CREATE TRIGGER refuse_title BEFORE INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION refuse_title()",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    from alembic import command

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('histories') / 'histories.db'}"
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        engine = create_engine(url, get_settings())
        yield Database(engine, engine, SQLITE_REFUSAL, ["DROP TRIGGER refuse_insert", "DROP TRIGGER refuse_update"])
        await engine.dispose()
        return
    name = f"{test_settings.DATABASE}_histories"
    await recreate_database(name)
    admin_url = f"postgresql+asyncpg://postgres@127.0.0.1:{test_settings.PRIMARY_PORT}/{name}"
    await asyncio.to_thread(command.upgrade, alembic_config(admin_url), "head")
    grant_roles(name)
    worker_url = f"postgresql+asyncpg://opengovfood_worker@127.0.0.1:{test_settings.PRIMARY_PORT}/{name}"
    engine, admin = create_engine(worker_url, get_settings()), create_engine(admin_url, get_settings())
    yield Database(engine, admin, POSTGRES_REFUSAL, ["DROP TRIGGER refuse_title ON item"])
    await engine.dispose()
    await admin.dispose()
    await recreate_database(name, create=False)


async def _reset(db: Database, owners: int) -> World:
    """Empty tables, the refusal in force, and `owners` users with two items each."""
    async with db.admin.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_title ON item"))
        else:
            for table in TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_insert"))
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_update"))
        for statement in db.refuse:
            await conn.exec_driver_sql(statement)
    world = World([], [])
    async with db.engine.begin() as conn:
        for n in range(owners):
            values = {"email": f"owner{n}@example.org", "hashed_password": HASH, "full_name": f"owner {n}"}
            user = (await conn.execute(insert(User).values(values).returning(User.id))).scalar_one()
            items = await conn.execute(
                insert(Item).returning(Item.id, sort_by_parameter_order=True),
                [{"owner_id": user, "title": f"item {k}"} for k in range(2)],
            )
            world.users.append(user)
            world.items.append([row.id for row in items])
    return world


def _model(world: World) -> WorkerModel:
    """The model of a world that _reset has just made."""
    return WorkerModel(
        emails={f"owner{n}@example.org": user for n, user in enumerate(world.users)},
        users={user: f"owner {n}" for n, user in enumerate(world.users)},
        items={item: (world.users[n], f"item {k}") for n, ids in enumerate(world.items) for k, item in enumerate(ids)},
        refused_title=REFUSED,
    )


# ---- running a history


class Run:
    """One history through the real pipeline, a worker process at a time (a crash starts another)."""

    def __init__(self, db: Database, model: WorkerModel, faults: Faults) -> None:
        self.db, self.model, self.faults = db, model, faults
        self.publisher = Publisher(faults)
        self.outbound = Outbound(self.publisher, get_settings().gateway_bus_user)  # type: ignore[arg-type]
        self.pipelines = self._new_worker()

    def _new_worker(self) -> dict[int, Pipeline]:
        unit_of_work = RecordingUnitOfWork(self.db.engine, self.model, self.faults)
        return {
            p: Pipeline(p, get_settings(), unit_of_work, self.outbound,
                        PartitionRelay(p, self.db.engine, self.outbound, page_size=3))
            for p in range(PARTITIONS)
        }  # fmt: skip

    async def round(
        self, batches: dict[int, list[Message]], fault: tuple[str, int], pending: dict[int, deque[Message]]
    ) -> None:
        fault, statement = fault
        if fault == "statement":
            self.faults.statement_at = statement
        self.faults.lost_commit_ack = fault == "lost-commit-ack"
        self.faults.refuse_outbox = fault == "refused-once"
        self.faults.publish = fault if fault in ("event", "reply", "dead-letter") else None
        handled = await asyncio.gather(
            *(self.pipelines[p].handle(batch) for p, batch in batches.items()),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        self.faults.statement_at = None
        self.faults.lost_commit_ack = self.faults.refuse_outbox = False
        crashed = fault == "crash-before-ack"
        for (partition, batch), result in zip(batches.items(), handled, strict=True):
            if isinstance(result, BaseException) and not (isinstance(result, InjectedFault) or is_transient(result)):
                raise result
            if isinstance(result, BaseException) or crashed:  # not acknowledged: delivered again, first
                pending[partition].extendleft(reversed(batch))
            else:
                await self._acknowledge(batch)
        if self.faults.publish == "reply":  # the pipeline sends replies best effort: a failure is no error
            self.faults.publish = None
        if crashed:  # what was in flight goes out or not; marks not yet written are lost with the process
            for pipeline in self.pipelines.values():
                await pipeline.relay.settled()
            self.pipelines = self._new_worker()

    async def _acknowledge(self, batch: list[Message]) -> None:
        """Only what has its outcome recorded may be acknowledged."""
        async with self.db.engine.connect() as conn:
            ids = [uuid.UUID(message.message_id) for message in batch]
            recorded = set(
                (await conn.execute(select(Command.command_id).where(Command.command_id.in_(ids)))).scalars()
            )
        assert set(ids) <= recorded, f"acknowledged without an outcome: {set(ids) - recorded}"

    async def drain(self) -> None:
        """The worker idles: every relay settles and flushes what is left in the outbox."""
        self.faults.publish = None
        for pipeline in self.pipelines.values():
            await pipeline.relay.settled()
            await pipeline.relay.flush()
            await pipeline.relay.mark_relayed()


async def _check(db: Database, model: WorkerModel, publisher: Publisher) -> None:
    async with db.engine.connect() as conn:
        inbox = {row.command_id: row for row in await conn.execute(select(Command.__table__))}
        users = {row.id: row.full_name for row in await conn.execute(select(User.id, User.full_name))}
        items = {
            row.id: (row.owner_id, row.title) for row in await conn.execute(select(Item.id, Item.owner_id, Item.title))
        }
        unpublished = (await conn.execute(select(OutboxEvent.id).where(OutboxEvent.published_at.is_(None)))).all()
    assert {command_id: (row.status, row.code) for command_id, row in inbox.items()} == {
        command_id: recorded.answer for command_id, recorded in model.inbox.items()
    }
    signed_up = {inbox[command_id].resource_id: full_name for command_id, (_, full_name) in model.signed_up.items()}
    assert users == model.users | signed_up
    created = {inbox[command_id].resource_id: item for command_id, item in model.created.items()}
    known = model.items | created
    assert {item_id: item for item_id, item in items.items() if item_id in known} == known
    assert sorted(item for item_id, item in items.items() if item_id not in known) == sorted(model.imported)
    assert unpublished == []
    first_seen: dict[str, uuid.UUID] = {}
    for event_id, command_id in publisher.events:
        first_seen.setdefault(event_id, command_id)
    owner_of = {command_id: owner for owner, command_id in model.events}
    published = [(owner_of.get(command_id), command_id) for command_id in first_seen.values()]
    for owner in {owner for owner, _ in model.events} | {owner for owner, _ in published}:
        expected = [command_id for o, command_id in model.events if o == owner]
        assert [command_id for o, command_id in published if o == owner] == expected, f"events of owner {owner}"


RoundPlan = tuple[list[int], tuple[int, ...], tuple[str, int], int]  # partitions together, batch sizes, fault, lift
AFTER_THE_PLAN: RoundPlan = (list(range(PARTITIONS)), (6,) * PARTITIONS, ("none", 1), 0)


def round_plans() -> st.SearchStrategy[list[RoundPlan]]:
    """The rounds, drawn before the history runs: which partitions go together, each one's batch size,
    the fault and the statement it hits, whether a refusal is lifted after the round. Drawn up front,
    not from the state of the run, so that what is drawn never depends on what a round did (Hypothesis
    refuses a test whose draws differ between replays: FlakyStrategyDefinition, seen in CI). Past the
    plan, rounds take every ready partition, six at a time, without faults."""
    one = st.tuples(
        st.lists(st.integers(0, PARTITIONS - 1), min_size=1, unique=True),
        st.tuples(*[st.integers(1, 6)] * PARTITIONS),
        st.tuples(st.sampled_from(FAULTS), st.integers(1, 12)),
        st.integers(0, 9),
    )
    return st.lists(one, max_size=40)


@seed(int(os.environ.get("HISTORY_SEED", "20261206")))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(history=histories(), plan=round_plans())
async def test_any_history_is_applied_exactly_once_as_the_model_says(
    db: Database, history: tuple[int, list[Step]], plan: list[RoundPlan]
) -> None:
    owners, history_steps = history
    world = await _reset(db, owners)
    model = _model(world)
    pending: dict[int, deque[Message]] = {p: deque() for p in range(PARTITIONS)}
    for message in deliveries(history_steps, world):
        pending[message.owner % PARTITIONS].append(message)
        if message.body.startswith(b"{not"):
            model.poison(uuid.UUID(message.message_id))
    run = Run(db, model, db.faults)
    for number in range(200):
        ready = [p for p in range(PARTITIONS) if pending[p]]
        if not ready:
            break
        partitions, sizes, fault, lift = plan[number] if number < len(plan) else AFTER_THE_PLAN
        chosen = [p for p in partitions if p in ready] or ready
        batches = {p: [pending[p].popleft() for _ in range(min(sizes[p], len(pending[p])))] for p in chosen}
        await run.round(batches, fault, pending)
        if model.refusing and lift == 0:
            async with db.admin.begin() as conn:
                for statement in db.lift:
                    await conn.exec_driver_sql(statement)
            model.refusing = False
    assert not any(pending.values()), "the history did not drain in 200 rounds"
    await run.drain()
    await _check(db, model, run.publisher)


async def test_events_committed_before_a_failed_dead_letter_publish_leave_first(db: Database) -> None:
    """A dead-letter publish fails after the commit: the batch's events still leave before later ones."""
    world = await _reset(db, 1)
    model = _model(world)
    run = Run(db, model, db.faults)
    owner = world.users[0]
    poison = Message("item.create", str(uuid.uuid4()), b"{not json", {}, 0)
    model.poison(uuid.UUID(poison.message_id))
    first, second = (
        _message(CommandName.ITEM_CREATE, CreateItem(owner_id=owner, title=title), owner=0, actor=owner,
                 command_id=uuid.uuid4(), key=None, fingerprinted=True)
        for title in ("first", "second")
    )  # fmt: skip
    pending: dict[int, deque[Message]] = {0: deque(), 1: deque()}
    await run.round({0: [first, poison]}, ("dead-letter", 0), pending)
    assert list(pending[0]) == [first, poison]  # not acknowledged: handled again
    await run.round({0: [pending[0].popleft(), pending[0].popleft()]}, ("none", 0), pending)
    await run.round({0: [second]}, ("none", 0), pending)
    await run.drain()
    await _check(db, model, run.publisher)


@pytest.mark.parametrize("statement", [1, 2, 3, 4])
async def test_a_poison_message_is_not_acknowledged_before_its_outcome_is_recorded(
    db: Database, statement: int
) -> None:
    """Shrunk from a generated history: the database dropped while a poison message's outcome was
    recorded, and the message was acknowledged with no outcome (pending for ever)."""
    world = await _reset(db, 1)
    model = _model(world)
    run = Run(db, model, db.faults)
    poison = Message("item.create", str(uuid.uuid4()), b"{not json", {}, 0)
    model.poison(uuid.UUID(poison.message_id))
    pending: dict[int, deque[Message]] = {0: deque(), 1: deque()}
    await run.round({0: [poison]}, ("statement", statement), pending)
    if pending[0]:
        await run.round({0: [pending[0].popleft()]}, ("none", 0), pending)
    await run.drain()
    await _check(db, model, run.publisher)
