"""Dead letters come back: once the cause is fixed, a replay or the client's retry applies the
command once and its outcome is replaced; what a caller reads of a failure is words, not data."""

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import pytest

from cli.bus import service_user
from cli.deadletters import BOOKKEEPING
from shared.settings import ServiceGrant
from shared.topology import DEAD_LETTER_EXCHANGE_NAME, DEAD_LETTER_QUEUE_NAME, declare_topology
from tests import settings as test_settings
from tests.ops.cli import opengovfood
from tests.ops.test_deadletters import HASH
from tests.security.helpers import BusLogin, outcome_of, peek_queue, provision, publish_as
from tests.support.api import WAIT, Client, sign_up, unique_email
from tests.support.bus import command_message, publish
from tests.support.database import WORKER_ROLE, items_refusing, rows_refusing, worker_lacks
from tests.support.events import tap_events
from tests.support.polling import eventually
from tests.support.processes import Worker


@pytest.fixture
async def inserts_refused(primary: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    async with worker_lacks(primary, "INSERT", "item") as conn:
        yield conn


async def _dead_letter(command_id: str) -> dict[str, Any] | None:
    letters = peek_queue(DEAD_LETTER_QUEUE_NAME)
    return next((m for m in letters if m["properties"].get("message_id") == command_id), None)


async def _command(http: httpx.AsyncClient, client: Client, command_id: str) -> dict[str, Any]:
    return dict((await http.get(f"/api/v1/commands/{command_id}", headers=client.headers)).json())


async def _items(primary: asyncpg.Connection, title: str) -> int:
    return int(await primary.fetchval("SELECT count(*) FROM item WHERE title = $1", title))


async def test_after_the_cause_is_fixed_a_replay_and_a_retry_apply_once(
    http: httpx.AsyncClient, inserts_refused: asyncpg.Connection
) -> None:
    primary = inserts_refused
    client = await sign_up(http)
    retried, replayed = f"retried {uuid.uuid4().hex}", f"replayed {uuid.uuid4().hex}"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await http.post("/api/v1/items", json={"title": retried}, headers={**client.headers, **WAIT, **key})
    parked = await http.post("/api/v1/items", json={"title": replayed}, headers={**client.headers, **WAIT})
    for answer in (first, parked):
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        assert "permission" in answer.json()["detail"]  # words: the kind of failure, never the row
    retried_id, replayed_id = first.json()["command_id"], parked.json()["command_id"]
    assert (await _command(http, client, replayed_id))["status"] == "dead_lettered"
    letter = await eventually(lambda: _dead_letter(replayed_id), lambda found: found is not None)
    assert "permission denied" in letter["properties"]["headers"]["x-death-reason"]  # the whole error, for operators
    again = await http.post("/api/v1/items", json={"title": retried}, headers={**client.headers, **WAIT, **key})
    assert again.status_code == 503  # the cause is still there: dead-lettered again, not answered from the past

    await primary.execute(f"GRANT INSERT ON item TO {WORKER_ROLE}")
    fixed = await http.post("/api/v1/items", json={"title": retried}, headers={**client.headers, **WAIT, **key})
    assert fixed.status_code == 201, fixed.text
    opengovfood("deadletters", "replay", replayed_id)
    outcome = await eventually(lambda: _command(http, client, replayed_id), lambda seen: seen["status"] == "applied")
    assert outcome["resource_id"] is not None
    assert (await _command(http, client, retried_id))["status"] == "applied"
    assert await _items(primary, retried) == await _items(primary, replayed) == 1
    retry_again = await http.post("/api/v1/items", json={"title": retried}, headers={**client.headers, **WAIT, **key})
    assert retry_again.json()["id"] == fixed.json()["id"]  # applied once: now the key answers that outcome


async def test_a_failure_shows_its_caller_the_rule_broken_not_the_values(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """A rule only the database knows (a trigger naming the value it refuses): the 503 and
    GET /commands say which rule, the dead-letter header keeps PostgreSQL's whole message."""
    client = await sign_up(http)
    secret = f"secret-{uuid.uuid4().hex}"
    async with items_refusing(primary, secret):
        answer = await http.post("/api/v1/items", json={"title": secret}, headers={**client.headers, **WAIT})
    assert answer.status_code == 503
    command_id = answer.json()["command_id"]
    shown = [answer.text, str(await _command(http, client, command_id))]
    assert all(secret not in text for text in shown)
    assert "trigger" in answer.json()["detail"]
    letter = await eventually(lambda: _dead_letter(command_id), lambda found: found is not None)
    assert secret in letter["properties"]["headers"]["x-death-reason"]


async def test_one_refused_create_among_100_on_the_bus_is_dead_lettered_alone(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """On PostgreSQL the run goes in one call that answers each row (migration 0010): the 99 others apply."""
    owner = await sign_up(http)
    refused = f"refused-{uuid.uuid4().hex}"
    titles = [f"fine {n}" for n in range(100)]
    titles[57] = refused
    async with items_refusing(primary, refused):
        ids = await _publish_creates(owner.id, titles)
        statuses = await _outcomes(primary, ids)
    dead = statuses[ids[57]]
    assert dead["status"] == "dead_lettered"
    assert refused not in dead["detail"]
    assert "trigger" in dead["detail"]
    assert [statuses[i]["status"] for n, i in enumerate(ids) if n != 57] == ["applied"] * 99
    letter = await eventually(lambda: _dead_letter(str(ids[57])), lambda found: found is not None)
    assert refused in letter["properties"]["headers"]["x-death-reason"]


async def test_a_row_a_trigger_skips_is_dead_lettered_not_created(
    http: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    """A BEFORE trigger that returns NULL makes PostgreSQL skip the row without an error: the command
    is dead-lettered (not `created`, no event), its 19 batch-mates are created with their events."""
    owner = await sign_up(http)
    skipped = f"skipped-{uuid.uuid4().hex}"
    titles = [f"kept {n}" for n in range(20)]
    titles[7] = skipped
    async with tap_events() as tap, items_refusing(primary, skipped, silently=True):
        ids = await _publish_creates(owner.id, titles)
        statuses = await _outcomes(primary, ids)
        kept = {ids[n] for n in range(20) if n != 7}
        events = await eventually(tap.drain, lambda seen: kept <= {uuid.UUID(e["command_id"]) for e in seen})
    assert statuses[ids[7]]["status"] == "dead_lettered"
    assert "trigger" in statuses[ids[7]]["detail"]
    assert [statuses[i]["status"] for i in ids if i != ids[7]] == ["applied"] * 19
    assert await _items(primary, skipped) == 0
    assert str(ids[7]) not in {e["command_id"] for e in events}
    letter = await eventually(lambda: _dead_letter(str(ids[7])), lambda found: found is not None)
    assert "was not inserted" in letter["properties"]["headers"]["x-death-reason"]


async def _publish_creates(owner_id: int, titles: list[str]) -> list[uuid.UUID]:
    """One item.create per title for this owner, published in order on the bus; their command ids."""
    actor = f"user:{owner_id}"
    messages = [
        ("item.create", command_message({"owner_id": owner_id, "title": t}, actor=actor, owner=str(owner_id)))
        for t in titles
    ]
    await publish(messages)
    return [uuid.UUID(message.message_id) for _, message in messages if message.message_id]


async def _outcomes(primary: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    """Each command's inbox row (`tx`: the transaction that wrote it), once the worker has recorded all."""
    sql = "SELECT command_id, status, detail, xmin::text AS tx FROM command WHERE command_id = ANY($1)"
    rows = await eventually(lambda: primary.fetch(sql, ids), lambda found: len(found) == len(ids), 60)
    return {row["command_id"]: row for row in rows}


async def test_refused_updates_and_user_commands_are_dead_lettered_alone_among_their_batch_mates(
    http: httpx.AsyncClient, primary: asyncpg.Connection, worker: Worker
) -> None:
    """item.update, user.create, user.update and user.delete, each refused by a trigger amid commands
    of its own partition, published as a backlog: each is dead-lettered alone, in the transaction
    that commits its batch-mates (the savepoint path on PostgreSQL, through the real bus)."""
    a, b, c = [await sign_up(http) for _ in range(3)]
    items = [await _create(http, a, f"before {n}") for n in range(3)]
    refused_title, refused_name = f"no-{uuid.uuid4().hex}", f"No {uuid.uuid4().hex}"
    fine_emails = [unique_email("mate") for _ in range(8)]
    refused_email = unique_email("refused")

    def by(user: Client, name: str, body: dict[str, Any]) -> tuple[str, Any]:
        return name, command_message(body, actor=f"user:{user.id}", owner=str(user.id))

    def signup(email: str, full_name: str) -> tuple[str, Any]:
        body = {"email": email, "hashed_password": HASH, "full_name": full_name}
        return "user.create", command_message(body, actor="anonymous", owner=email)

    messages = [
        by(a, "item.update", {"item_id": items[0], "title": "after 0"}),
        by(a, "item.update", {"item_id": items[1], "title": refused_title}),  # refused
        by(a, "item.update", {"item_id": items[2], "title": "after 2"}),
        by(a, "user.update", {"user_id": a.id, "full_name": refused_name}),  # refused
        by(a, "user.update", {"user_id": a.id, "full_name": "Fine A"}),
        by(b, "item.create", {"owner_id": b.id, "title": "b before"}),
        by(b, "user.delete", {"user_id": b.id}),  # refused
        by(b, "item.create", {"owner_id": b.id, "title": "b after"}),
        by(c, "user.delete", {"user_id": c.id}),
        *(signup(email, "Fine Mate") for email in fine_emails[:4]),
        signup(refused_email, refused_name),  # refused
        *(signup(email, "Fine Mate") for email in fine_emails[4:]),
    ]
    ids = [uuid.UUID(message.message_id) for _, message in messages if message.message_id]
    refused = {ids[1], ids[3], ids[6], ids[13]}
    async with (
        rows_refusing(primary, "item", "title", refused_title, on="UPDATE"),
        rows_refusing(primary, "user", "full_name", refused_name, on="INSERT OR UPDATE"),
        rows_refusing(primary, "user", "email", b.email, on="DELETE"),
    ):
        worker.stop()  # a backlog: each partition's commands come in one batch
        try:
            await publish(messages)
        finally:
            worker.start()
        outcomes = await _outcomes(primary, ids)
    for command_id in ids:
        outcome = outcomes[command_id]
        if command_id in refused:
            assert (outcome["status"], "trigger" in outcome["detail"]) == ("dead_lettered", True), outcome
            mates = [o for i, o in outcomes.items() if i not in refused and o["tx"] == outcome["tx"]]
            assert mates, f"{outcome} was not recorded in a transaction that applied a batch-mate"
        else:
            assert outcome["status"] == "applied", outcome
    titles = await primary.fetch("SELECT title FROM item WHERE id = ANY($1) ORDER BY id", items)
    assert [row["title"] for row in titles] == ["after 0", "before 1", "after 2"]
    users = {r["email"]: r["full_name"] for r in await primary.fetch('SELECT email, full_name FROM "user"')}
    assert (users[a.email], b.email in users, c.email in users, refused_email in users) == (
        "Fine A",
        True,
        False,
        False,
    )
    assert all(users[email] == "Fine Mate" for email in fine_emails)
    owned = await primary.fetch("SELECT title FROM item WHERE owner_id = $1 ORDER BY id", b.id)
    assert [row["title"] for row in owned] == ["b before", "b after"]


async def _create(http: httpx.AsyncClient, client: Client, title: str) -> int:
    answer = await http.post("/api/v1/items", json={"title": title}, headers={**client.headers, **WAIT})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


DEAD = "dead_lettered"
PERSISTENT = aio_pika.DeliveryMode.PERSISTENT


async def republish_dead_letter_as(login: BusLogin, command_id: str) -> None:
    """What a service that got hold of a dead letter might do: publish it again as itself."""
    connection = await aio_pika.connect(test_settings.RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE_NAME, passive=True)
        while (letter := await queue.get(no_ack=False, fail=False)) is not None:
            if letter.message_id == command_id:
                break
        assert letter is not None, f"{command_id} is not in the dead-letter queue"
        routing_key = str((letter.headers or {}).get("x-original-routing-key") or letter.routing_key)
        headers = {k: v for k, v in (letter.headers or {}).items() if k not in BOOKKEEPING}
        again = aio_pika.Message(
            letter.body, message_id=command_id, user_id=login.name, headers=headers, delivery_mode=PERSISTENT
        )
        await publish_as(login, routing_key, again)
        await letter.ack()


def _replay_as(login: BusLogin, command_id: str) -> None:
    """`opengovfood deadletters replay` as that bus user (RABBIT_URL names it)."""
    url = f"amqp://{quote(login.name, safe='')}:{quote(login.password, safe='')}@127.0.0.1:5672/{test_settings.VHOST}"
    opengovfood("deadletters", "replay", command_id, env={"RABBIT_URL": url})


async def _parked(http: httpx.AsyncClient, client: Client, title: str) -> str:
    """A create the database refuses (the worker may not insert items): dead-lettered, its id."""
    parked = await http.post("/api/v1/items", json={"title": title}, headers={**client.headers, **WAIT})
    assert parked.status_code == 503, parked.text
    command_id = str(parked.json()["command_id"])
    await eventually(lambda: _dead_letter(command_id), lambda found: found is not None)
    return command_id


async def test_an_operator_replays_a_dead_letter_as_the_actor_that_sent_it(
    http: httpx.AsyncClient, inserts_refused: asyncpg.Connection
) -> None:
    """Provisioned with least privilege, the operator's own bus user republishes the command: it is
    applied as its first sender (here a user), not as the operator, who may do nothing itself."""
    primary = inserts_refused
    client = await sign_up(http)
    title = f"replayed by an operator {uuid.uuid4().hex}"
    command_id = await _parked(http, client, title)
    await primary.execute(f"GRANT INSERT ON item TO {WORKER_ROLE}")
    grant = ServiceGrant.model_validate(test_settings.SERVICE_GRANTS[test_settings.SERVICE_OPERATOR])
    _replay_as(provision(service_user(test_settings.SERVICE_OPERATOR, grant)), command_id)
    outcome = await eventually(
        lambda: _command(http, client, command_id), lambda seen: seen["status"] != "dead_lettered"
    )
    assert outcome["status"] == "applied", outcome
    assert await primary.fetchval("SELECT actor FROM command WHERE command_id = $1", uuid.UUID(command_id)) == (
        f"user:{client.id}"
    )
    assert await _items(primary, title) == 1


async def test_a_service_that_is_no_operator_replaying_a_dead_letter_acts_as_itself(
    http: httpx.AsyncClient, inserts_refused: asyncpg.Connection
) -> None:
    primary = inserts_refused
    client = await sign_up(http)
    title = f"replayed by another service {uuid.uuid4().hex}"
    command_id = await _parked(http, client, title)
    await primary.execute(f"GRANT INSERT ON item TO {WORKER_ROLE}")
    # The service may publish item.create (the broker lets it), but only for an owner that is not this one.
    grant = ServiceGrant.model_validate(test_settings.SERVICE_GRANTS[test_settings.SERVICE_LIMITED])
    limited = provision(service_user(test_settings.SERVICE_LIMITED, grant))
    await republish_dead_letter_as(limited, command_id)
    row = await eventually(
        lambda: primary.fetchrow(
            "SELECT status, code, actor FROM command WHERE command_id = $1", uuid.UUID(command_id)
        ),
        lambda found: found is not None and found["status"] != "dead_lettered",
    )
    assert (row["status"], row["code"], row["actor"]) == ("rejected", "not_found", f"service:{limited.name}")
    assert await _items(primary, title) == 0


async def test_events_committed_before_a_failed_dead_letter_publish_are_not_stranded(
    http: httpx.AsyncClient, primary: asyncpg.Connection, rabbit: aio_pika.abc.AbstractRobustConnection
) -> None:
    """The dead-letter exchange is gone, so a batch's dead letter cannot be published after its
    commit: the batch's events still leave, before the owner's later ones."""
    client = await sign_up(http)
    run = uuid.uuid4().hex[:8]
    before, refused, after = [f"before {run} {n}" for n in range(20)], f"refused {run}", f"after {run}"

    def create(title: str, command_id: uuid.UUID | None = None) -> tuple[str, aio_pika.Message]:
        body = {"owner_id": client.id, "title": title}
        actor, owner = f"user:{client.id}", str(client.id)
        return "item.create", command_message(body, actor=actor, owner=owner, command_id=command_id)

    refused_id = uuid.uuid4()
    async with tap_events() as tap, items_refusing(primary, refused):
        channel = await rabbit.channel()
        await channel.exchange_delete(DEAD_LETTER_EXCHANGE_NAME)
        try:
            await publish([create(title) for title in before] + [create(refused, refused_id)])
            await outcome_of(primary, refused_id)  # committed (dead-lettered), its dead letter not published yet
        finally:
            await declare_topology(test_settings.RABBIT_URL, int(test_settings.ENV["COMMAND_PARTITIONS"]))
        await publish([create(after)])

        def titles(events: list[dict[str, Any]]) -> list[str]:
            return list(dict.fromkeys(e["data"].get("title") for e in events if e["name"] == "item.created"))

        seen = await eventually(lambda: tap.drain(), lambda events: after in titles(events), 60)
    order = titles(seen)
    assert set(before) <= set(order), f"stranded: {sorted(set(before) - set(order))}"
    assert max(order.index(title) for title in before) < order.index(after)
    assert (await _dead_letter(str(refused_id))) is not None
