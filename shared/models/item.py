"""The seed's item table, kept exactly (canonical index and constraint names)."""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.models.base import Base

if TYPE_CHECKING:
    from shared.models.user import User


class ItemStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Item(Base):
    __tablename__ = "item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default=ItemStatus.PENDING.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=True, server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=func.now())
    owner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE", name="fk_item_owner"), nullable=False
    )

    owner: Mapped["User"] = relationship(back_populates="items")

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'in_progress', 'completed', 'cancelled')",
            name="check_item_status",
        ),
        Index("ix_item_id", "id"),
        Index("ix_item_owner_id", "owner_id"),
        Index("ix_item_status", "status"),
        Index("ix_item_created_at", "created_at"),
        Index("ix_item_owner_status", "owner_id", "status"),
        {"sqlite_autoincrement": True},
    )


# Declared after the class: the DESC index needs the mapped column to order by.
Index("ix_item_owner_created", Item.owner_id, Item.created_at.desc(), Item.id.desc())  # ties: by id

# Case-insensitive title search (ILIKE '%q%') without a sequential scan: a trigram index.
# PostgreSQL only; Alembic's env.py leaves it out of the comparison on SQLite.
Index(
    "ix_item_title_trgm",
    Item.title,
    postgresql_using="gin",
    postgresql_ops={"title": "gin_trgm_ops"},
    info={"postgresql_only": True},
)
