"""The example services' pydantic models say what docs/asyncapi.yaml says: the same fields, by name,
in every event they handle and in the outcome the publisher reads (fast: no services)."""

import typing
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tests.ops.cli import ROOT
from tests.support.examples import example

SCHEMAS: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())["components"]["schemas"]
FOLLOWED = ["ItemCreatedEvent", "ItemImportedEvent", "ItemUpdatedEvent", "ItemDeletedEvent", "UserDeletedEvent"]


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as list[Model]."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def referenced(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema a property refers to, directly or as its array's items."""
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    return SCHEMAS[ref.rsplit("/", 1)[-1]] if ref else None


def mismatches(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    """Where the model's fields and the schema's properties differ, nested models included."""
    properties = schema.get("properties", {})
    found = [f"{path}: only in the model: {sorted(set(model.model_fields) - set(properties))}"] * bool(
        set(model.model_fields) - set(properties)
    )
    found += [f"{path}: required by the document, not in the model: {name}"
              for name in schema.get("required", []) if name not in model.model_fields]  # fmt: skip
    for name, field in model.model_fields.items():
        inner, target = nested_model(field.annotation), referenced(properties.get(name, {}))
        if inner is not None and target is not None:
            found += mismatches(inner, target, f"{path}.{name}")
    return found


@pytest.mark.parametrize("name", FOLLOWED)
def test_each_event_the_follower_handles_has_the_documents_fields(name: str) -> None:
    model = getattr(example("follower"), name)
    assert mismatches(model, SCHEMAS[name], name) == []
    assert model.model_fields["name"].annotation == typing.Literal[SCHEMAS[name]["properties"]["name"]["const"]]


def test_the_outcome_the_publisher_reads_has_the_documents_fields() -> None:
    outcome = example("publisher").Outcome
    assert set(outcome.model_fields) <= set(SCHEMAS["Outcome"]["properties"])
