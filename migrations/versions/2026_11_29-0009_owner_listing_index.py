"""ix_item_owner_created also orders by id, the listing's tie-breaker.

The owner listing is newest first, (created_at DESC, id DESC): every item of one transaction has
the same created_at (a batch, an import chunk), so with the seed's (owner_id, created_at DESC) a
page of 20 had to read and sort every item of those ties. Same name, one more column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _index(*columns: str) -> None:
    op.drop_index("ix_item_owner_created", table_name="item")
    op.create_index("ix_item_owner_created", "item", [sa.literal_column(column) for column in columns])


def upgrade() -> None:
    _index("owner_id", "created_at DESC", "id DESC")


def downgrade() -> None:
    _index("owner_id", "created_at DESC")
