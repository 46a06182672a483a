"""Initial schema: the seed's user and item tables, and the command inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM_STATUSES = "status IN ('pending', 'in_progress', 'completed', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("hashed_password", sa.String(length=255), nullable=False),
        sa.Column("full_name", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="user_pkey"),
    )
    op.create_index("ix_user_email", "user", ["email"], unique=True)
    op.create_index("ix_user_id", "user", ["id"])
    op.create_index("ix_user_created_at", "user", ["created_at"])
    op.create_index(
        "ix_active_users",
        "user",
        ["id"],
        postgresql_where=sa.text("is_active"),
        sqlite_where=sa.text("is_active"),
    )

    op.create_table(
        "item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(ITEM_STATUSES, name="check_item_status"),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], name="item_owner_id_fkey", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="item_pkey"),
    )
    op.create_index("ix_item_id", "item", ["id"])
    op.create_index("ix_item_owner_id", "item", ["owner_id"])
    op.create_index("ix_item_status", "item", ["status"])
    op.create_index("ix_item_created_at", "item", ["created_at"])
    op.create_index("ix_item_owner_status", "item", ["owner_id", "status"])
    op.create_index("ix_item_owner_created", "item", ["owner_id", sa.literal_column("created_at DESC")])

    op.create_table(
        "command",
        sa.Column("command_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("resource_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("command_id", name="command_pkey"),
    )
    op.create_index("ix_command_actor_applied_at", "command", ["actor", "applied_at"])
    op.create_index("ix_command_applied_at", "command", ["applied_at"])


def downgrade() -> None:
    op.drop_table("command")
    op.drop_table("item")
    op.drop_table("user")
