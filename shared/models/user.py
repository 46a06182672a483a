"""The seed's user table, kept exactly: its canonical index and constraint names."""

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, Index, Integer, String, UniqueConstraint, func, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.models.base import Base

if TYPE_CHECKING:
    from shared.models.item import Item


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), nullable=False)
    hashed_password: Mapped[str] = mapped_column(String(255), nullable=False)
    full_name: Mapped[str] = mapped_column(String(255), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=True, server_default=true(), default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=True, server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=func.now())

    items: Mapped[list["Item"]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("email", name="unique_email"),
        Index("ix_user_email", "email", unique=True),
        Index("ix_user_id", "id"),
        Index("ix_user_created_at", "created_at"),
        {"sqlite_autoincrement": True},  # the seed's AUTOINCREMENT: a deleted id is never handed out again
    )


# Declared after the class: the partial index needs the mapped column as its predicate.
_active = text("is_active")
Index("ix_active_users", User.id, postgresql_where=_active, sqlite_where=_active)
