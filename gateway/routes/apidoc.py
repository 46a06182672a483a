"""The OpenAPI document: what each route declares, plus what routes share, derived from the routes themselves.

Routes declare their own answers (`write_answers`, business problems). Everything a route gets from a
shared mechanism is added here from what the route depends on, so the document cannot forget it: 401
for the caller's token, 400 and 422 for its parameters, 429 for writes (EdgeLimits), 413 and 431 for
every route, 503 where a database or the broker is needed, X-Request-ID on every request and answer.
"""

from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

from gateway.http.problems import PROBLEM_JSON
from gateway.http.request import FIELD_VALUE, TOKEN_PATTERN
from gateway.http.schemas import Accepted, FieldError, Problem
from gateway.infrastructure.limits import WRITE_METHODS
from shared.contracts.outcomes import Outcome
from shared.logging import _REQUEST_ID

API_PREFIX = "/api/"
SERVERS = [{"url": "http://127.0.0.1:8000", "description": "`make run` on this machine"}]
DESCRIPTION = (
    "Users and their items. Writes are commands: `202` with the command's `Location`, or with "
    "`Prefer: wait=N` the outcome itself. Every error is `application/problem+json` (RFC 9457)."
)


def _header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string", **schema}}


# components/headers: response headers, named by what they say (`required` differs between uses).
HEADERS = {
    "RequestId": _header("This request's id: the caller's X-Request-ID when sane, else a new one", {}, required=True),
    "ConsistencyToken": _header("Read with this token to see at least this answer", {"pattern": TOKEN_PATTERN}),
    "ServedBy": _header("Which database answered this request's reads", {"enum": ["replica", "primary"]}),
    "PreferenceApplied": _header("`wait` when `Prefer: wait` was honoured", {"enum": ["wait"]}),
    "CommandLocation": _header("The command, to follow its outcome", {}, required=True),
    "ResourceLocation": _header("The created resource", {}, required=True),
    "ImportLocation": _header("The import, to follow its progress", {}, required=True),
    "ETag": _header("The item's entity tag, for If-Match", {"pattern": '^"[0-9a-f]{32}"$'}, required=True),
    "ShownETag": _header("The item's entity tag, when the item is shown", {"pattern": '^"[0-9a-f]{32}"$'}),
    "RetryAfter": _header("Seconds to wait before retrying", {"pattern": "^[0-9]+$"}, required=True),
    "WWWAuthenticate": _header("`Bearer`", {}, required=True),
}


def header(name: str) -> dict[str, str]:
    """A reference to one of HEADERS."""
    assert name in HEADERS, name
    return {"$ref": f"#/components/headers/{name}"}


PROBLEM_DESCRIPTIONS = {
    401: "No valid access token, or its user is gone or inactive",
    413: "The request body is larger than this route accepts",
    422: "The request is invalid: `errors` says where and why",
    429: "Too many requests from this client or caller",
    431: "The request headers are too large",
    503: "A database or the broker is unreachable just now, or busy",
}


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: where a client goes next with a value from this answer."""
    return {"operationId": operation_id, "parameters": parameters}


def write_answers(
    success: int,
    resource: type[BaseModel] | None,
    rejections: dict[int, str],
    *,
    etag: bool = False,
    links: dict[str, Any] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """What a write answers: 202 at once, or with `Prefer: wait` its outcome (docs/api.md)."""
    outcome = {"X-Consistency-Token": header("ConsistencyToken"), "Preference-Applied": header("PreferenceApplied")}
    applied: dict[str, Any] = {"description": "Applied (with `Prefer: wait`)", "headers": dict(outcome)}
    if resource is not None:  # the resource as it is now, or the command's own record if it is gone since
        applied["model"] = resource | Outcome
    if success == 201:
        applied["headers"]["Location"] = header("ResourceLocation")
    if etag:
        applied["headers"]["ETag"] = header("ShownETag")
    if links:
        applied["links"] = links
    accepted: dict[str, Any] = {
        "model": Accepted,
        "description": "Accepted: the command is on the bus; `Location` is the command",
        "headers": {"Location": header("CommandLocation"), "Preference-Applied": header("PreferenceApplied")},
        "links": {"outcome": link("commands-read", command_id="$response.body#/command_id")},
    }
    rejected: dict[int | str, dict[str, Any]] = {
        status: {"description": why, "headers": dict(outcome)} for status, why in rejections.items()
    }
    return {202: accepted, success: applied, **rejected}


def install(app: FastAPI) -> None:
    """The package version, the servers, and the document below as the app's OpenAPI."""
    app.version = version("opengovfood")
    app.servers = SERVERS
    app.description = DESCRIPTION

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed operation by operation."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if not getattr(route, "include_in_schema", False) or not isinstance(dependant, Dependant):
            continue
        calls = set(_calls(dependant))
        for method in route.methods or ():
            path = str(route.path_format)
            _complete(doc["paths"][path][method.lower()], path, method, calls)
    doc["components"]["headers"] = HEADERS
    schemas = doc["components"].setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for model in (Problem, FieldError):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] = {"$ref": "#/components/schemas/FieldError"}
    schemas["Problem"].pop("$defs", None)
    return doc


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _complete(operation: dict[str, Any], path: str, method: str, calls: set[Callable[..., Any]]) -> None:
    responses: dict[str, dict[str, Any]] = operation.setdefault("responses", {})
    api = path.startswith(API_PREFIX)
    shared = {413, 431}
    shared |= {503} if api else set()
    shared |= {401} if operation.get("security") else set()  # the bearer token: gateway/routes/deps.py oauth2
    shared |= {429} if api and method in WRITE_METHODS else set()
    shared |= {422} if operation.get("parameters") or operation.get("requestBody") else set()
    for status in sorted(shared):
        responses.setdefault(str(status), {"description": PROBLEM_DESCRIPTIONS[status]})
    for code, response in responses.items():
        _complete_response(int(code), response, api)
    parameters = operation.setdefault("parameters", [])
    for parameter in parameters:
        parameter["schema"] = _without_null(parameter["schema"])
    parameters.append(
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "description": f"Your id for this request, echoed and logged end to end when it matches "
            f"`{_REQUEST_ID.pattern}`; any other value is replaced by a new id, never refused",
            "schema": {"type": "string", "pattern": FIELD_VALUE},
        }
    )


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter is left out, never null: `anyOf [X, null]` is just X."""
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if len(options) != 1 or len(options) == len(schema["anyOf"]):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**options[0], **rest}


def _complete_response(status: int, response: dict[str, Any], api: bool) -> None:
    headers = response.setdefault("headers", {})
    headers["X-Request-ID"] = header("RequestId")
    if api:
        headers.setdefault("X-Served-By", header("ServedBy"))
    if status < 400:
        headers.setdefault("X-Consistency-Token", header("ConsistencyToken"))
        return
    if status == 429 or (status == 503 and api):
        headers.setdefault("Retry-After", header("RetryAfter"))
    if status == 401:
        headers["WWW-Authenticate"] = header("WWWAuthenticate")
    content = response.get("content", {})
    if not content or "HTTPValidationError" in str(content):
        response["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
