"""Errors as application/problem+json (RFC 9457): every error the gateway answers goes through here."""

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from shared.contracts.fields import readable

PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER_S = "2"
# A database that cannot be reached (or a pool with no free connection in time) is a 503, not a 500.
UNAVAILABLE = (sa.OperationalError, sa.InterfaceError, sa.TimeoutError, ConnectionError, TimeoutError)


class Problem(HTTPException):
    """An HTTP error with a title, a detail and optional extra members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.extra = extra


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        # A detail may quote the request, and a lone surrogate from it cannot be encoded: it becomes "?".
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def problem_response(status: int, detail: Any, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def answer_for(error: Exception) -> JSONResponse | None:
    """The problem+json answer of an error raised outside FastAPI's routes (None: not ours to answer)."""
    if isinstance(error, Problem):
        return problem_response(error.status_code, error.detail, dict(error.headers or {}), **error.extra)
    if isinstance(error, UNAVAILABLE):
        return unavailable()
    return None


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's 400 for a body that is not UTF-8
        return problem_response(
            422, "body: not UTF-8 text", errors=[_error(["body"], "not UTF-8 text", "json_invalid")]
        )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app.routes, request.url.path))
    extra = exc.extra if isinstance(exc, Problem) else {}
    return problem_response(exc.status_code, exc.detail, headers, **extra)


def allowed_methods(routes: list[BaseRoute], path: str) -> list[str]:
    """Every method some route serves on this path (Starlette's 405 names only the first route's)."""
    methods = {
        method
        for route in iter_route_contexts(routes)
        if (regex := getattr(route, "path_regex", None)) is not None and regex.match(path)
        for method in route.methods or ()
    }
    return sorted(methods)


async def validation_exception_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_error(error["loc"], readable(error), error["type"]) for error in exc.errors()]
    reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem_response(422, reasons, errors=errors)


def _error(loc: Any, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def unavailable() -> JSONResponse:
    return problem_response(
        503, "the database is unreachable just now; retry shortly", {"Retry-After": DATABASE_RETRY_AFTER_S}
    )


async def unavailable_handler(_request: Request, exc: Exception) -> JSONResponse:
    return unavailable()


def install(app: FastAPI) -> None:
    """Answer HTTP errors, invalid requests and an unreachable database as problem+json."""
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, unavailable_handler)
