"""Load for the fault tests: many writes, and the ledger of what the gateway answered."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import httpx

from tests.support.api import Client


@dataclass
class Ledger:
    """Per title: the HTTP status the gateway gave, and how long it took."""

    status: dict[str, int] = field(default_factory=dict)
    slowest_s: float = 0.0

    def titles(self, code: int) -> set[str]:
        return {title for title, status in self.status.items() if status == code}

    def counts(self) -> Counter[int]:
        return Counter(self.status.values())


async def post_items(
    http: httpx.AsyncClient,
    client: Client,
    titles: list[str],
    concurrency: int,
    on_progress: Callable[[Ledger], None] | None = None,
) -> Ledger:
    """POST one item per title (no Prefer: wait), `concurrency` at a time."""
    ledger, queue = Ledger(), list(reversed(titles))

    async def writer() -> None:
        while queue:
            title = queue.pop()
            started = time.monotonic()
            try:
                response = await http.post("/api/v1/items", json={"title": title}, headers=client.headers)
                ledger.status[title] = response.status_code
            except httpx.HTTPError:
                ledger.status[title] = 0
            ledger.slowest_s = max(ledger.slowest_s, time.monotonic() - started)
            if on_progress is not None:
                on_progress(ledger)

    await asyncio.gather(*(writer() for _ in range(concurrency)))
    return ledger


async def rows_by_title(primary: asyncpg.Connection, owner_id: int) -> Counter[str]:
    rows = await primary.fetch("SELECT title FROM item WHERE owner_id = $1", owner_id)
    return Counter(row["title"] for row in rows)


def audit(ledger: Ledger, rows: Counter[str]) -> dict[str, int]:
    """Lost, duplicated and unexpected rows against the answers the gateway gave."""
    accepted, maybe = ledger.titles(202), ledger.titles(503) | ledger.titles(0)
    return {
        "accepted": len(accepted),
        "maybe (503)": len(maybe),
        "lost": len([t for t in accepted if rows[t] == 0]),
        "duplicated": sum(n - 1 for n in rows.values() if n > 1),
        "unexpected": len([t for t in rows if t not in accepted and t not in maybe]),
        "maybe applied": len([t for t in maybe if rows[t] == 1]),
    }
