"""The actor of a command, as carried in the message headers."""

from dataclasses import dataclass


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
