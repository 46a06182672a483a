"""The seed's query patterns on a data set of 20,000 items: right rows, and indexes in the plans."""

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from gateway.infrastructure import repository
from tests.support.api import Client, sign_up
from tests.support.database import wait_for_replica

OWNERS, PER_OWNER = 20, 1000
STATUSES = ["pending", "in_progress", "completed", "cancelled"]
WORDS = ["apple", "bread", "carrot", "dough", "eggplant", "flour", "garlic", "honey"]


@pytest.fixture(scope="module")
async def dataset(stack) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One signed-up owner and 19 others, 1,000 items each, loaded straight into the primary."""
    async with httpx.AsyncClient(base_url=stack[1].url, timeout=30) as http:
        me = await sign_up(http)
    connection = await asyncpg.connect(_dsn())
    try:
        others = [
            await connection.fetchval(
                'INSERT INTO "user" (email, hashed_password, full_name) VALUES ($1, $2, $3) RETURNING id',
                f"bulk-{uuid.uuid4().hex}@example.org", "$argon2id$unused", f"Owner {n}",
            )
            for n in range(OWNERS - 1)
        ]  # fmt: skip
        rng, start = random.Random(7), datetime(2026, 1, 1, tzinfo=UTC)
        rows, mine = [], []
        for owner in [me.id, *others]:
            for n in range(PER_OWNER):
                title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{n}" + (" quinoa" if n % 250 == 0 else "")
                row = (title, None, rng.choice(STATUSES), owner, start + timedelta(seconds=len(rows)))
                rows.append(row)
                if owner == me.id:
                    mine.append(row)
        await connection.copy_records_to_table(
            "item", records=rows, columns=["title", "description", "status", "owner_id", "created_at"]
        )
        await connection.execute("VACUUM ANALYZE item")  # as autovacuum would: flushes the GIN pending list
        await connection.execute('ANALYZE "user"')
    finally:
        await connection.close()
    await wait_for_replica()
    return {"me": me, "mine": mine}


def _dsn() -> str:
    from tests import settings

    return settings.PRIMARY_DSN


async def test_search_is_case_insensitive_and_returns_exactly_the_matches(
    http: httpx.AsyncClient, dataset: dict[str, Any]
) -> None:
    me: Client = dataset["me"]
    expected = sorted((r for r in dataset["mine"] if "garlic" in r[0]), key=lambda r: r[4], reverse=True)
    response = await http.get("/api/v1/items", params={"q": "GARLIC", "limit": 100}, headers=me.headers)
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == len(expected)
    assert [i["title"] for i in page["data"]] == [r[0] for r in expected[:100]]
    assert all(i["owner_full_name"] == "Test User" for i in page["data"])  # joined with the owner


async def test_stats_count_each_status(http: httpx.AsyncClient, dataset: dict[str, Any]) -> None:
    counts = Counter(r[2] for r in dataset["mine"])
    stats = (await http.get("/api/v1/items/stats", headers=dataset["me"].headers)).json()
    assert stats == {**{s: counts[s] for s in STATUSES}, "total": PER_OWNER}


async def test_offset_and_cursor_pagination_walk_the_same_rows(
    http: httpx.AsyncClient, dataset: dict[str, Any]
) -> None:
    me: Client = dataset["me"]
    expected = [r[0] for r in sorted(dataset["mine"], key=lambda r: r[4], reverse=True) if r[2] == "completed"]
    by_offset, by_cursor, cursor = [], [], None
    for skip in range(0, len(expected) + 100, 100):
        params = {"status": "completed", "limit": 100, "skip": skip}
        by_offset += [
            i["title"] for i in (await http.get("/api/v1/items", params=params, headers=me.headers)).json()["data"]
        ]
    while True:
        params: dict[str, Any] = {"status": "completed", "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/api/v1/items", params=params, headers=me.headers)).json()
        by_cursor += [i["title"] for i in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert by_offset == by_cursor == expected
    assert (await http.get("/api/v1/items", params={"cursor": "bogus!"}, headers=me.headers)).status_code == 422


async def _plan(replica: asyncpg.Connection, statement: Any, params: dict[str, Any] | None = None) -> str:
    """EXPLAIN of the statement exactly as the gateway sends it (asyncpg, $n parameters)."""
    compiled = statement.compile(dialect=asyncpg_dialect.dialect())
    values = {**compiled.params, **(params or {})}
    rows = await replica.fetch(f"EXPLAIN {compiled}", *[values[name] for name in compiled.positiontup])
    return "\n".join(r[0] for r in rows)


async def test_search_and_owner_listing_use_indexes(replica: asyncpg.Connection, dataset: dict[str, Any]) -> None:
    me: Client = dataset["me"]
    mine, search_mine = repository.Listing(me.id, "Me", 100), repository.Listing(me.id, "Me", 100, q="quinoa")
    listing = (repository.listing(False, False, False)[0], mine.params())
    searched = (repository.listing(False, True, False)[0], search_mine.params())
    title = repository.Item.title
    search_everyone = (select(title).where(title.ilike("%QUINOA%")).limit(100), None)
    for statement, params in (listing, search_everyone, searched):
        plan = await _plan(replica, statement, params)
        assert "Seq Scan on item" not in plan, plan
        assert "Index" in plan, plan
    assert "ix_item_title_trgm" in await _plan(replica, *search_everyone)
    # Either owner index serves the listing: with other owners' rows in the table (another test
    # module's, in the same database) the planner may prefer the seed's ix_item_owner_id + top-N sort.
    listing_plan = await _plan(replica, *listing)
    assert "ix_item_owner_created" in listing_plan or "ix_item_owner_id" in listing_plan, listing_plan
