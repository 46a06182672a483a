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
    """WAL bytes the replica has not replayed, and seconds behind (0 when caught up); with several
    standbys, those of the one furthest behind."""

    bytes: int
    seconds: float
    paused: bool


class StandbyFigures(BaseModel):
    """One standby of READ_DATABASE_URL: whether it answers, whether reads without a token go to it
    now, and how far behind the primary it is (null: unknown)."""

    name: str  # host:port
    up: bool
    serving: bool  # false: down, or lagging past MAX_REPLICA_LAG_S while another standby is within it
    bytes: int | None  # WAL the primary has written and this standby has not replayed
    seconds: float | None  # since the primary first had WAL this standby has not replayed (0: caught up)
    paused: bool | None  # its replay is paused (pg_wal_replay_pause)
    problem: str | None = None  # what is wrong with it, if anything


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
            "status": "degraded",
            "problems": ["standby 10.0.0.3:5432 lags 7.5s (limit 5.0s)"],
            "replica_lag": {"bytes": 91264, "seconds": 7.5, "paused": False},
            "standbys": [
                {"name": "10.0.0.2:5432", "up": True, "serving": True, "bytes": 0, "seconds": 0.0, "paused": False},
                {
                    "name": "10.0.0.3:5432",
                    "up": True,
                    "serving": False,
                    "bytes": 91264,
                    "seconds": 7.5,
                    "paused": False,
                    "problem": "lags 7.5s (limit 5.0s)",
                },
            ],
            "command_queues": [{"name": "opengovfood.commands.p0", "messages": 0, "consumers": 1}],
            "dead_letters": 0,
        }
    )

    status: Literal["ok", "degraded"]
    problems: list[str]
    replica_lag: ReplicaLag | None  # the standby furthest behind (null: none measured)
    standbys: list[StandbyFigures]  # each standby of READ_DATABASE_URL (none: reads go to the primary)
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
