"""The published contracts (docs/asyncapi.yaml, docs/openapi.json) are what the code generates now."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from gateway.openapi import openapi_json
from gateway.routes.docs import render_html
from shared.contracts.asyncapi import app as asyncapi_app
from shared.contracts.events import EventName
from worker.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "run `make docs` and commit the result"


def generated_asyncapi() -> dict[str, object]:
    assert asyncapi_app.schema is not None
    return dict(yaml.safe_load(asyncapi_app.schema.to_specification().to_yaml()))


def test_asyncapi_file_matches_the_code() -> None:
    published = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert published == generated_asyncapi(), REGENERATE


def test_asyncapi_covers_every_command_and_event_with_its_body() -> None:
    document = generated_asyncapi()
    channels: dict[str, dict[str, object]] = document["channels"]  # type: ignore[assignment]
    schemas: dict[str, object] = document["components"]["schemas"]  # type: ignore[index]
    addresses = {channel["address"] for channel in channels.values()}
    assert {name.value for name in CATALOGUE} <= addresses
    assert {event.value for event in EventName} <= addresses
    assert {command.body.__name__ for command in CATALOGUE.values()} | {"Event"} <= set(schemas)


def test_the_cli_generator_agrees(tmp_path: Path) -> None:
    """`faststream docs gen` (what `make docs` runs) writes the same document."""
    out = tmp_path / "asyncapi.yaml"
    faststream = Path(sys.executable).with_name("faststream")
    subprocess.run(
        [str(faststream), "docs", "gen", "shared.contracts.asyncapi:app", "--yaml", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert yaml.safe_load(out.read_text()) == generated_asyncapi()


def test_openapi_file_matches_the_code() -> None:
    published = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert published == json.loads(openapi_json()), REGENERATE


def test_asyncapi_page_is_self_contained() -> None:
    page = render_html(generated_asyncapi())
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page
    for name in CATALOGUE:
        assert f"<code>{name.value}</code>" in page


async def test_gateway_serves_both_documents(http: httpx.AsyncClient) -> None:
    page = await http.get("/asyncapi")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "user.create" in page.text
    assert "hashed_password" in page.text
    served = await http.get("/asyncapi.yaml")
    assert yaml.safe_load(served.text) == generated_asyncapi()
    assert (await http.get("/openapi.json")).json() == json.loads(openapi_json())
    assert (await http.get("/docs")).status_code == 200
