"""One row per import: how many of its chunks and rows were applied or rejected, and the first errors."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base

# JSONB on PostgreSQL so that the worker can append errors in the upsert itself.
ErrorList = JSON().with_variant(JSONB(), "postgresql")


class ImportState(StrEnum):
    PENDING = "pending"  # never stored: what the API answers while no chunk has been applied
    RUNNING = "running"
    COMPLETED = "completed"


class ImportJob(Base):
    __tablename__ = "import_job"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # No foreign key: a chunk for a missing owner is still counted (all its rows rejected).
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False)
    total_chunks: Mapped[int] = mapped_column(Integer, nullable=False)
    chunks_done: Mapped[int] = mapped_column(Integer, nullable=False)
    applied: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(ErrorList, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        Index("ix_import_job_owner_id", "owner_id"),
        Index("ix_import_job_updated_at", "updated_at"),
    )


class ImportJobChunk(Base):
    """One row per applied chunk: the claim that makes a republished chunk (a new message id) a no-op.

    The key includes owner_id: a chunk naming another owner's import claims only in its own owner's
    key space, so it can never mark the real owner's (import_id, seq) as done (see
    worker/handlers/imports.py).
    """

    __tablename__ = "import_chunk"

    import_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
