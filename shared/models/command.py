"""The inbox: one row per applied or rejected command, keyed by its id; also the audit log."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, Uuid, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base

ACTOR_LENGTH = 80  # "user:<id>", "anonymous" or "service:<bus user>"


class CommandStatus(StrEnum):
    PENDING = "pending"  # never stored: what the API answers while no row exists
    APPLIED = "applied"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"


class Command(Base):
    __tablename__ = "command"

    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    code: Mapped[str] = mapped_column(String(40), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    resource_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH), nullable=False)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # keyed id of (caller, Idempotency-Key)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        Index("ix_command_actor_applied_at", "actor", "applied_at"),
        Index("ix_command_applied_at", "applied_at"),
        Index(
            "ix_command_idempotency_key",
            "idempotency_key",
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )
