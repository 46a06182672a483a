"""The AsyncAPI document, as YAML, JSON and a plain HTML page rendered here (offline: no CDN, no script)."""

from functools import lru_cache
from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

router = APIRouter(tags=["docs"], include_in_schema=False)
STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px}"
)


@lru_cache
def asyncapi_document() -> dict[str, Any]:
    """The document generated from the contract registries (shared/contracts/asyncapi.py)."""
    from shared.contracts.asyncapi import app

    assert app.schema is not None
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return document


@lru_cache
def asyncapi_yaml() -> str:
    from shared.contracts.asyncapi import app

    assert app.schema is not None
    return app.schema.to_specification().to_yaml()


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("%20", " ").replace("~1", "/")]
    return node


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_of(option) for option in schema["anyOf"])
    limits = [f"{key}={schema[key]}" for key in ("minLength", "maxLength", "minimum", "maximum") if key in schema]
    kind = str(schema.get("format") or schema.get("type", "any"))
    if "enum" in schema:
        kind = " | ".join(str(value) for value in schema["enum"])
    return kind + (f" ({', '.join(limits)})" if limits else "")


def _schema_table(document: dict[str, Any], schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        schema = _resolve(document, schema["$ref"])
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(_type_of(prop))}</td>"
        f"<td>{'yes' if name in required else 'no'}</td></tr>"
        for name, prop in schema.get("properties", {}).items()
    )
    title = escape(str(schema.get("title", "")))
    return f"<p>Body <b>{title}</b></p><table><tr><th>field</th><th>type</th><th>required</th></tr>{rows}</table>"


def _channel_html(document: dict[str, Any], name: str, channel: dict[str, Any]) -> str:
    messages = [_resolve(document, message["$ref"]) for message in channel.get("messages", {}).values()]
    bodies = "".join(_schema_table(document, message.get("payload", {})) for message in messages)
    return (
        f"<section id='{escape(name)}'><h3>{escape(name)}</h3>"
        f"<p>routing key <code>{escape(str(channel.get('address', '')))}</code></p>"
        f"<p>{escape(str(channel.get('description', '')))}</p>{bodies}</section>"
    )


def render_html(document: dict[str, Any]) -> str:
    """A self-contained page: every channel with its routing key, notes and body fields."""
    info = document.get("info", {})
    channels = sorted(document.get("channels", {}).items())
    toc = "".join(f"<li><a href='#{escape(name)}'>{escape(name)}</a></li>" for name, _ in channels)
    body = "".join(_channel_html(document, name, channel) for name, channel in channels)
    title = escape(f"{info.get('title', '')} {info.get('version', '')}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>"
        f"<p>{escape(str(info.get('description', '')))}</p><p><a href='/asyncapi.yaml'>asyncapi.yaml</a> · "
        f"<a href='/asyncapi.json'>asyncapi.json</a></p><ul>{toc}</ul>{body}</body></html>"
    )


@router.get("/asyncapi", response_class=HTMLResponse)
async def asyncapi_page() -> HTMLResponse:
    """The message contract as a readable page."""
    return HTMLResponse(render_html(asyncapi_document()))


@router.get("/asyncapi.json")
async def asyncapi_json() -> JSONResponse:
    return JSONResponse(asyncapi_document())


@router.get("/asyncapi.yaml")
async def asyncapi_yaml_file() -> PlainTextResponse:
    return PlainTextResponse(asyncapi_yaml(), media_type="application/yaml")
