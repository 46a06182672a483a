"""The published contracts (docs/asyncapi.yaml, docs/openapi.json) are what the code generates now."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from gateway.app import openapi_json
from gateway.routes.docs import asyncapi_yaml, render_html
from shared.contracts.asyncapi import document, to_yaml
from shared.contracts.versions import BODIES

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
REGENERATE = "run `make docs` and commit the result"


def test_asyncapi_file_is_what_the_generator_writes_now() -> None:
    assert ASYNCAPI.read_text(encoding="utf-8") == to_yaml(document()), REGENERATE


def test_make_docs_writes_the_same_file(tmp_path: Path) -> None:
    """`python -m shared.contracts.asyncapi FILE` (`make docs`) writes the same document, whatever the environment."""
    out = tmp_path / "asyncapi.yaml"
    env = {"PATH": "/usr/bin:/bin", "COMMAND_PARTITIONS": "7"}
    subprocess.run([sys.executable, "-m", "shared.contracts.asyncapi", str(out)], cwd=ROOT, env=env, check=True)
    assert out.read_text(encoding="utf-8") == ASYNCAPI.read_text(encoding="utf-8")


def test_the_gateway_package_ships_the_committed_document() -> None:
    assert asyncapi_yaml() == ASYNCAPI.read_text(encoding="utf-8")


def test_openapi_file_matches_the_code() -> None:
    published = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert published == json.loads(openapi_json()), REGENERATE


def test_asyncapi_page_is_self_contained() -> None:
    page = render_html(yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8")))
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page
    for name in BODIES:
        assert f"<code>{name.value}</code>" in page
    assert "<code>x-owner</code>" in page
    assert "<code>import_progress</code>" in page


async def test_gateway_serves_both_documents(http: httpx.AsyncClient) -> None:
    page = await http.get("/asyncapi")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "user.create" in page.text
    assert "hashed_password" in page.text
    committed = ASYNCAPI.read_text(encoding="utf-8")
    served = await http.get("/asyncapi.yaml")
    assert served.text == committed
    assert (await http.get("/asyncapi.json")).json() == yaml.safe_load(committed)
    assert (await http.get("/openapi.json")).json() == json.loads(openapi_json())
    assert (await http.get("/docs")).status_code == 200


def test_the_image_build_has_the_document_the_gateway_package_links_to() -> None:
    """gateway/asyncapi.yaml links to docs/asyncapi.yaml: the builder stage copies it before building the wheel."""
    assert (ROOT / "gateway" / "asyncapi.yaml").resolve() == ASYNCAPI.resolve()
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert lines.index("COPY docs/asyncapi.yaml docs/") < lines.index("RUN pip install --no-deps .")
