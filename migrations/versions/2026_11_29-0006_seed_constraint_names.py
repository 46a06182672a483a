"""The seed's own names: `unique_email`, `fk_item_owner`, and AUTOINCREMENT ids on SQLite.

The seed's DDL has `id INTEGER PRIMARY KEY AUTOINCREMENT` (SQLite never hands out a deleted id
again; PostgreSQL's sequences never do anyway), `CONSTRAINT unique_email UNIQUE (email)` and
`CONSTRAINT fk_item_owner FOREIGN KEY (owner_id) REFERENCES user(id) ON DELETE CASCADE`.
`ix_user_email` stays: it is the canonical unique index the rest of the seed names.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM_STATUSES = "status IN ('pending', 'in_progress', 'completed', 'cancelled')"


def _recreate() -> str:
    """AUTOINCREMENT is part of SQLite's CREATE TABLE: the table is rebuilt; PostgreSQL alters in place."""
    return "always" if op.get_context().dialect.name == "sqlite" else "auto"


def _tables(renamed: bool) -> tuple[sa.Table, sa.Table]:
    """user and item before a step (renamed: as this revision leaves them), for SQLite's rebuild.

    Given, not reflected: reflection loses the DESC of ix_item_owner_created and cannot run offline.
    """
    metadata, options = sa.MetaData(), {"sqlite_autoincrement": renamed}
    active = sa.text("is_active")
    user = sa.Table(
        "user",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("hashed_password", sa.String(255), nullable=False),
        sa.Column("full_name", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        *([sa.UniqueConstraint("email", name="unique_email")] if renamed else []),
        sa.Index("ix_user_email", "email", unique=True),
        sa.Index("ix_user_id", "id"),
        sa.Index("ix_user_created_at", "created_at"),
        sa.Index("ix_active_users", "id", postgresql_where=active, sqlite_where=active),
        **options,
    )
    item = sa.Table(
        "item",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), server_default="pending", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(ITEM_STATUSES, name="check_item_status"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user.id"], name="fk_item_owner" if renamed else "item_owner_id_fkey", ondelete="CASCADE"
        ),
        sa.Index("ix_item_id", "id"),
        sa.Index("ix_item_owner_id", "owner_id"),
        sa.Index("ix_item_status", "status"),
        sa.Index("ix_item_created_at", "created_at"),
        sa.Index("ix_item_owner_status", "owner_id", "status"),
        **options,
    )
    sa.Index("ix_item_owner_created", item.c.owner_id, item.c.created_at.desc())
    return user, item


def _rename(renamed: bool) -> None:
    user, item = _tables(renamed)
    options = {"sqlite_autoincrement": not renamed}
    old_fk, new_fk = ("fk_item_owner", "item_owner_id_fkey") if renamed else ("item_owner_id_fkey", "fk_item_owner")
    with op.batch_alter_table("user", copy_from=user, recreate=_recreate(), table_kwargs=options) as batch:
        if renamed:
            batch.drop_constraint("unique_email", type_="unique")
        else:
            batch.create_unique_constraint("unique_email", ["email"])
    with op.batch_alter_table("item", copy_from=item, recreate=_recreate(), table_kwargs=options) as batch:
        batch.drop_constraint(old_fk, type_="foreignkey")
        batch.create_foreign_key(new_fk, "user", ["owner_id"], ["id"], ondelete="CASCADE")


def upgrade() -> None:
    _rename(renamed=False)


def downgrade() -> None:
    _rename(renamed=True)
