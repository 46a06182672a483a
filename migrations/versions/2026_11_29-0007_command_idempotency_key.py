"""The Idempotency-Key (its keyed id) of each command: a key reused for another body is refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("command") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_command_idempotency_key",
        "command",
        ["idempotency_key"],
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_command_idempotency_key", table_name="command")
    with op.batch_alter_table("command") as batch:
        batch.drop_column("idempotency_key")
