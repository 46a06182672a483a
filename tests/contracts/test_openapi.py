"""docs/openapi.json is complete: statuses, problem+json, headers, examples, operationIds, version."""

import json
import re
import tomllib
from typing import Any

import httpx
import pytest

from tests.support.processes import ROOT

DOCUMENT: dict[str, Any] = json.loads((ROOT / "docs" / "openapi.json").read_text())
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
WRITES = {"post", "put", "patch", "delete"}
OPERATION_IDS = {
    "login", "users-signup", "users-me", "users-read", "users-update-me", "users-change-password",
    "users-delete-me", "users-me-activity", "items-create", "items-list", "items-stats", "items-read",
    "items-update", "items-delete", "commands-read", "imports-create", "imports-read",
    "health-live", "health-ready", "health-status",
}  # fmt: skip


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items()]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    found: Any = DOCUMENT
    for part in node["$ref"].removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def test_the_version_is_the_package_version_and_servers_are_named() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert DOCUMENT["info"]["version"] == project["version"]
    assert DOCUMENT["servers"]
    assert all(server["url"] for server in DOCUMENT["servers"])


def test_operation_ids_are_the_stable_readable_ones() -> None:
    ids = [op["operationId"] for _, _, op in operations()]
    assert sorted(ids) == sorted(OPERATION_IDS)
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", operation_id) for operation_id in ids)


@pytest.mark.parametrize(("path", "method", "operation"), operations())
def test_every_operation_declares_what_its_shared_mechanisms_answer(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    statuses = set(operation["responses"])
    assert {"413", "431"} <= statuses  # EdgeLimits, before any route
    if operation.get("security"):
        assert "401" in statuses
    if path.startswith("/api/"):
        assert "503" in statuses
        assert "429" in statuses or method not in WRITES
    if operation.get("requestBody") or len(operation.get("parameters", [])) > 1:
        assert "422" in statuses
    for status, response in operation["responses"].items():
        headers = response["headers"]
        assert headers["X-Request-ID"] == {"$ref": "#/components/headers/RequestId"}
        if int(status) >= 400 and (path, status) != ("/health/ready", "503"):
            assert response["content"] == PROBLEM, (path, method, status)
        if status in {"201", "202"}:
            assert _resolve(headers["Location"])["required"] is True
        if status in {"429"} or (status == "503" and path.startswith("/api/")):
            assert _resolve(headers["Retry-After"])["required"] is True


@pytest.mark.parametrize(("path", "method", "operation"), operations())
def test_every_header_parameter_has_a_pattern_and_every_body_an_example(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "header":
            assert "pattern" in parameter["schema"], (path, method, parameter["name"])
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        schema = _resolve(content["schema"])
        assert "example" in content or schema.get("examples"), (path, method, media_type)


def test_the_headers_a_client_relies_on_are_declared() -> None:
    paths = DOCUMENT["paths"]
    create = paths["/api/v1/items"]["post"]
    created = set(create["responses"]["201"]["headers"])
    assert {"Location", "ETag", "X-Consistency-Token", "Preference-Applied"} <= created
    assert {"Location", "Preference-Applied"} <= set(create["responses"]["202"]["headers"])
    assert "ETag" in paths["/api/v1/items/{item_id}"]["get"]["responses"]["200"]["headers"]
    assert "X-Served-By" in paths["/api/v1/items/{item_id}"]["get"]["responses"]["200"]["headers"]
    names = {parameter["name"].lower() for parameter in paths["/api/v1/items/{item_id}"]["patch"]["parameters"]}
    assert {"idempotency-key", "x-consistency-token", "if-match", "prefer", "x-request-id"} <= names


@pytest.mark.parametrize("path", sorted(DOCUMENT["paths"]))
async def test_an_undocumented_method_is_405_with_the_documented_methods_in_allow(
    http: httpx.AsyncClient, path: str
) -> None:
    concrete = re.sub(r"\{[^}]+\}", "1", path)
    response = await http.request("TRACE", concrete)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    allowed = {method.strip().lower() for method in response.headers["Allow"].split(",")}
    assert allowed - {"head"} == set(DOCUMENT["paths"][path])
