"""Idempotency-Key: a retry of the same request is the same command; another request with the key
is a command of its own, which is refused (`idempotency_key_reused`).

Both ids are keyed with SECRET_KEY, so nobody without it can predict them: the key's id from
(caller, key), the command's id from (key id, body fingerprint). The fingerprint covers the
request's route and body, never a password (a fast hash of one would let SECRET_KEY's holder guess
it at hash speed): sign-up retries that differ only in the password are answered as the first.
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import Set
from dataclasses import dataclass

from pydantic import BaseModel

from shared.contracts.headers import HEADER_FINGERPRINT, HEADER_IDEMPOTENCY_KEY

NAMESPACE = uuid.UUID("6f1d3c9e-7c1b-4a52-9d8e-0b6a4c2f3e10")
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentRequest:
    key_id: uuid.UUID  # the same for every request with this key (and caller)
    command_id: uuid.UUID  # the same for every retry of this request
    fingerprint: str

    def headers(self) -> dict[str, str]:
        """What travels with the command: the worker records the key's id and the body's fingerprint."""
        return {HEADER_IDEMPOTENCY_KEY: str(self.key_id), HEADER_FINGERPRINT: self.fingerprint}


KEY_PATTERN = rf"^[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}$"


def _keyed(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def idempotent(
    secret: str, scope: str, key: str | None, route: str, body: BaseModel | None, unhashed: Set[str] = frozenset()
) -> IdempotentRequest | None:
    """The ids of (scope, key) and of this request; `unhashed` fields (passwords) stay out of its fingerprint."""
    if key is None:
        return None
    key_id = uuid.uuid5(NAMESPACE, _keyed(secret, f"key\n{scope}\n{key}"))
    fields = body.model_dump(mode="json", exclude_unset=True, exclude=set(unhashed)) if body else {}
    fingerprint = _keyed(secret, f"{route}\n{json.dumps(fields, sort_keys=True)}")[:64]
    return IdempotentRequest(key_id, uuid.uuid5(NAMESPACE, f"{key_id}\n{fingerprint}"), fingerprint)
