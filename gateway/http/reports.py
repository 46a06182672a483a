"""What the gateway reports about itself and the system (/health), and a caller's activity: answers
only, never a request body (those are in gateway/http/schemas.py)."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gateway.http.schemas import examples
from shared.models import CommandStatus


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ReplicaLag(BaseModel):
    """WAL bytes the replica has not replayed, and seconds behind (0 when caught up)."""

    bytes: int
    seconds: float
    paused: bool


class Readiness(BaseModel):
    model_config = examples(
        {
            "status": "ok",
            "checks": {"broker": True, "replica": True, "primary": True},
            "replica_lag": {"bytes": 0, "seconds": 0.0, "paused": False},
        }
    )

    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]
    replica_lag: ReplicaLag | None = None


class QueueFigures(BaseModel):
    name: str
    messages: int | None
    consumers: int | None


class SystemStatus(BaseModel):
    model_config = examples(
        {
            "status": "ok",
            "problems": [],
            "replica_lag": {"bytes": 0, "seconds": 0.0, "paused": False},
            "command_queues": [{"name": "opengovfood.commands.p0", "messages": 0, "consumers": 1}],
            "dead_letters": 0,
        }
    )

    status: Literal["ok", "degraded"]
    problems: list[str]
    replica_lag: ReplicaLag | None
    command_queues: list[QueueFigures]
    dead_letters: int | None


class ActivityEntry(BaseModel):
    """One command of the caller: what it was, when, its outcome and what it changed."""

    model_config = ConfigDict(from_attributes=True)

    command_id: uuid.UUID
    name: str
    status: CommandStatus
    code: str
    detail: str | None = None
    resource_id: int | None = None
    changes: dict[str, Any] | None = None  # secrets are recorded as "<changed>", never their value
    received_at: datetime
    applied_at: datetime


class Activity(BaseModel):
    model_config = examples(
        {
            "data": [
                {
                    "command_id": "3f0c2b1e-7d4a-4c8e-9a51-2b6f0e9d1c44",
                    "name": "item.update",
                    "status": "applied",
                    "code": "updated",
                    "resource_id": 7,
                    "changes": {"status": "completed"},
                    "received_at": "2026-11-29T10:15:00Z",
                    "applied_at": "2026-11-29T10:15:00Z",
                }
            ]
        }
    )

    data: list[ActivityEntry]
