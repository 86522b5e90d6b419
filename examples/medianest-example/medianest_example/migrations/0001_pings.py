"""The pings the example plugin receives.

Revision ID: example_0001
Revises:
Create Date: 2026-12-03 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# A plugin's revisions are named after it, and its first one starts its own branch.
revision = "example_0001"
down_revision = None
branch_labels = ("example",)
# MediaNest's revision that created the users table, which the pings refer to.
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "example_pings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("example_pings") as batch:
        batch.create_index("ix_example_pings_at", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("example_pings")
