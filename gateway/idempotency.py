"""Idempotency-Key: the command id is derived from caller and key; a body fingerprint travels along."""

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header
from pydantic import BaseModel

from gateway.problems import Problem

NAMESPACE = uuid.UUID("6f1d3c9e-7c1b-4a52-9d8e-0b6a4c2f3e10")
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentRequest:
    command_id: uuid.UUID
    fingerprint: str


async def get_idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str | None:
    if idempotency_key is None:
        return None
    if not 0 < len(idempotency_key) <= MAX_KEY_LENGTH or not idempotency_key.isprintable():
        raise Problem(400, f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters")
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(get_idempotency_key)]


def idempotent(
    secret: str, scope: str, key: str | None, route: str, body: BaseModel | None
) -> IdempotentRequest | None:
    """The command id for (scope, key), and a keyed fingerprint of the request (no secret leaks)."""
    if key is None:
        return None
    command_id = uuid.uuid5(NAMESPACE, f"{scope}\n{key}")
    content = json.dumps(body.model_dump(mode="json", exclude_unset=True) if body else {}, sort_keys=True)
    digest = hmac.new(secret.encode(), f"{route}\n{content}".encode(), hashlib.sha256).hexdigest()
    return IdempotentRequest(command_id, digest[:64])
