"""The base of every command body (its own module so that contract modules can share it)."""

from pydantic import BaseModel, ConfigDict


class CommandBody(BaseModel):
    """Base of every command body: immutable, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
