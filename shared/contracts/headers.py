"""The message headers of the public contract (docs/publishing.md), and the actor one of them carries."""

from dataclasses import dataclass

# On commands.
HEADER_SCHEMA_VERSION = "x-schema-version"
HEADER_ACTOR = "x-actor"  # "user:<id>" or "anonymous"; honoured only from the gateway's bus user
HEADER_OWNER = "x-owner"  # partition key: the owner's user id, or the e-mail for user.create
HEADER_FINGERPRINT = "x-fingerprint"  # optional: identifies the request behind an idempotency key
HEADER_IDEMPOTENCY_KEY = "x-idempotency-key"  # optional: the key's id; reused for another command: refused
HEADER_REQUEST_ID = "x-request-id"  # optional: the HTTP request behind a command, carried to its events
# On events.
HEADER_COMMAND_ID = "x-command-id"  # the command that caused them
# On dead letters, added by the worker.
HEADER_DEATH_REASON = "x-death-reason"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"
HEADER_ORIGINAL_USER_ID = "x-original-user-id"  # user_id itself must be ours: the broker validates it


@dataclass(frozen=True)
class Actor:
    """Who sent a command: a user (asserted by the gateway only), anyone signing up, or a service."""

    kind: str  # "user" | "anonymous" | "service"
    user_id: int | None = None
    service: str | None = None

    def __str__(self) -> str:
        if self.kind == "user":
            return f"user:{self.user_id}"
        if self.kind == "service":
            return f"service:{self.service}"
        return "anonymous"

    @classmethod
    def user(cls, user_id: int) -> "Actor":
        return cls("user", user_id=user_id)

    @classmethod
    def anonymous(cls) -> "Actor":
        return cls("anonymous")

    @classmethod
    def parse(cls, value: str) -> "Actor":
        """Parse the x-actor header ("user:<id>" or "anonymous"); raises ValueError otherwise."""
        if value == "anonymous":
            return cls.anonymous()
        kind, _, ident = value.partition(":")
        if kind == "user" and ident.isdigit() and 0 < int(ident) < 2**31:
            return cls.user(int(ident))
        raise ValueError(f"invalid actor {value!r}")

    @classmethod
    def recorded(cls, value: str) -> "Actor":
        """The actor as the inbox recorded it (str() of an Actor): a service too."""
        kind, _, service = value.partition(":")
        return cls("service", service=service) if kind == "service" else cls.parse(value)
