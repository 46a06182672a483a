"""Schemathesis hooks for the contract run: every request is made as a signed-up, logged-in user.

Loaded by `st run` through SCHEMATHESIS_HOOKS; the gateway's address comes in OPENGOVFOOD_URL.
"""

import os
import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import schemathesis
from fastapi import HTTPException
from schemathesis import Case
from schemathesis.auths import AuthContext
from schemathesis.core.transport import Response
from schemathesis.hooks import HookContext

from gateway.http.pagination import decode_cursor, encode_cursor
from gateway.infrastructure.idempotency import KEY_PATTERN as KEY_PATTERN_TEXT

PASSWORD = "schemathesis password"
ENDS_THE_TOKEN = {("DELETE", "/api/v1/users/me"), ("PUT", "/api/v1/users/me/password")}
KEY_PATTERN = re.compile(KEY_PATTERN_TEXT)

# An import body is text, line by line: sent as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


class SignedUpUser:
    """One user at a time; a new one once the run has deleted it or changed its password."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._token: str | None = None
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._sign_up()
            return self._token

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def _sign_up(self) -> str:
        email = f"schemathesis-{uuid.uuid4().hex[:12]}@example.org"
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            body = {"email": email, "password": PASSWORD, "full_name": "Schemathesis"}
            http.post("/api/v1/users", json=body, headers={"Prefer": "wait=10"}).raise_for_status()
            login = http.post("/api/v1/login/access-token", data={"username": email, "password": PASSWORD})
            login.raise_for_status()
            return str(login.json()["access_token"])


USER = SignedUpUser(os.environ.get("OPENGOVFOOD_URL", "http://127.0.0.1:8000"))


@schemathesis.auth(refresh_interval=None)
class BearerOfASignedUpUser:
    def get(self, case: Case, context: AuthContext) -> str:
        return USER.token()

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def after_call(context: HookContext, case: Case, response: Response) -> None:
    if (case.method.upper(), case.path) in ENDS_THE_TOKEN and response.status_code < 300:
        USER.forget()


@schemathesis.hook
def filter_case(context: HookContext, case: Case) -> bool:
    """Drop the cases that are not what their label says once they are on the wire.

    Positive: schemathesis 4.32.5's coverage phase cannot produce a value for an optional header whose
    pattern has more than one part (`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`), seeds a negative one
    (`0`) instead, and still labels the combinations built on it positive.
    Negative: a JSON value sent as JSON Lines is a valid line, not a "wrong type".
    """
    if case.meta is None:
        return True
    if case.meta.generation.mode.is_negative:
        return not (case.media_type == "application/x-ndjson" and not isinstance(case.body, str))
    return all(_matches(parameter, (case.headers or {}).get(parameter.name)) for parameter in _headers(case))


def _headers(case: Case) -> list[Any]:
    return [parameter for parameter in case.operation.iter_parameters() if parameter.location.value == "header"]


def _matches(parameter: Any, value: Any) -> bool:
    pattern = parameter.definition.get("schema", {}).get("pattern")
    return value is None or (isinstance(value, str) and (pattern is None or re.search(pattern, value) is not None))


@schemathesis.hook
def map_case(context: HookContext, case: Case) -> Case:
    """Make the request one a real client could send, where the schema cannot say so.

    A well-formed Idempotency-Key is made unique, as the API asks (reused with another body it is
    422); a password change names the current password (a wrong one is 403); a valid case's cursor
    is one the API could have given out (cursors are opaque: an invented one is 422).
    """
    if case.meta is not None and case.meta.generation.mode.is_positive and (case.query or {}).get("cursor"):
        try:
            decode_cursor(str(case.query["cursor"]))  # type: ignore[index]
        except HTTPException:
            case.query["cursor"] = encode_cursor(datetime.now(UTC), 2**31 - 1)  # type: ignore[index]
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() == "idempotency-key" and isinstance(value, str) and KEY_PATTERN.match(value):
            headers[name] = f"{value[:200]}-{uuid.uuid4().hex}"
    if isinstance(case.body, dict) and isinstance(case.body.get("current_password"), str):
        case.body["current_password"] = PASSWORD
    return case
