"""A mirror of items fed only by events rebuilds exactly the owner's items, imported ones included."""

from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.contracts.events import EVENTS, EventName
from shared.importer import ImportFormat, publish_import
from shared.publishing import Publisher
from tests import settings as test_settings
from tests.imports.support import finished_job, write_csv
from tests.support.api import WAIT, create_item, sign_up
from tests.support.events import tap_events
from tests.support.polling import eventually

Mirror = dict[int, dict[str, Any]]


def follow(mirror: Mirror, seen: set[str], event: dict[str, Any]) -> None:
    """What docs/consuming.md tells a mirror to do with one event (at least once: skip what was seen)."""
    if event["event_id"] in seen:
        return
    seen.add(event["event_id"])
    name, data, item_id = event["name"], event["data"], event["resource_id"]
    if name == EventName.ITEM_CREATED:
        mirror[item_id] = dict(data)
    elif name == EventName.ITEM_IMPORTED:
        mirror.update({item["id"]: {k: v for k, v in item.items() if k != "id"} for item in data["items"]})
    elif name == EventName.ITEM_UPDATED and item_id in mirror:
        mirror[item_id].update(data)
    elif name == EventName.ITEM_DELETED:
        mirror.pop(item_id, None)


def of_owner(events: list[dict[str, Any]], owner_id: int) -> list[dict[str, Any]]:
    """The item events of one owner, in arrival order (updates and deletes name only the item)."""
    ours, ids = [], set()
    for event in events:
        name, data = event["name"], event["data"]
        if name == EventName.ITEM_IMPORTED and event["resource_id"] == owner_id:
            ids |= {item["id"] for item in data["items"]}
        elif name == EventName.ITEM_CREATED and data["owner_id"] == owner_id:
            ids.add(event["resource_id"])
        elif not (name in (EventName.ITEM_UPDATED, EventName.ITEM_DELETED) and event["resource_id"] in ids):
            continue
        ours.append(event)
    return ours


async def test_a_mirror_fed_by_events_rebuilds_the_imported_and_the_created_items(
    http: httpx.AsyncClient, primary: asyncpg.Connection, tmp_path: Path
) -> None:
    owner = await sign_up(http)
    write_csv(tmp_path / "items.csv", 2_500)  # 3 chunks; 25 bad rows
    async with tap_events() as tap:
        first = (await create_item(http, owner, title="one by one", description="before")).json()
        publisher = Publisher(test_settings.RABBIT_URL, "test-import-events")
        try:
            published = await publish_import(publisher, tmp_path / "items.csv", ImportFormat.CSV, owner_id=owner.id)
        finally:
            await publisher.close()
        await finished_job(primary, published.import_id)
        imported = await primary.fetch("SELECT id FROM item WHERE owner_id = $1 AND id != $2", owner.id, first["id"])
        changed, gone = imported[0]["id"], imported[1]["id"]
        assert (await create_item(http, owner, title="after the import", status="completed")).status_code == 201
        waiting = {**owner.headers, **WAIT}
        patch = await http.patch(f"/api/v1/items/{changed}", json={"description": None}, headers=waiting)
        assert patch.status_code == 200, patch.text
        delete = await http.delete(f"/api/v1/items/{gone}", headers=waiting)
        assert delete.status_code == 204, delete.text

        def last_seen(events: list[dict[str, Any]]) -> bool:
            return any(e["name"] == EventName.ITEM_DELETED and e["resource_id"] == gone for e in events)

        events = await eventually(tap.drain, last_seen)
    ours = of_owner(events, owner.id)
    assert [e["name"] for e in ours] == [  # in the order the owner's commands were applied
        "item.created",
        *["item.imported"] * 3,
        "item.created",
        "item.updated",
        "item.deleted",
    ]
    for event in ours:
        EVENTS[EventName(event["name"])].model_validate(event)  # each payload is what the contract says

    mirror: Mirror = {}
    seen: set[str] = set()
    for event in ours + ours[:3]:  # a redelivery changes nothing
        follow(mirror, seen, event)
    rows = await primary.fetch(
        "SELECT id, owner_id, title, description, status FROM item WHERE owner_id = $1", owner.id
    )
    assert mirror == {row["id"]: {k: row[k] for k in ("owner_id", "title", "description", "status")} for row in rows}
    assert len(mirror) == 1 + 2_475 - 1 + 1
