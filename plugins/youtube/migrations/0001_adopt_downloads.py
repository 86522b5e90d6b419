"""The downloads table becomes the youtube plugin's own: adopted as it is where MediaNest's
core migration 0004 created it (every installation until now), created where it is missing.

Revision ID: youtube_0001
Revises:
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "youtube_0001"
down_revision = None
branch_labels = ("youtube",)
# The core revision that created the table before it was the plugin's: adopting it comes after.
depends_on = "0004"

TABLE = "youtube_downloads"
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    if TABLE in sa.inspect(op.get_bind()).get_table_names():
        return  # adopted: its rows stay as they are
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("percent", sa.Double(), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("size_kib", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("folder", sa.Text(), nullable=True),
        sa.Column("files", JSON, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table(TABLE) as batch:
        batch.create_index(
            "ix_youtube_downloads_source", ["user_id", "kind", "source_id"], unique=False
        )
        batch.create_index("ix_youtube_downloads_status", ["status"], unique=False)
        batch.create_index(
            "ix_youtube_downloads_user_id_created_at", ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    # The plugin's data goes with its branch (`medianest migrate --downgrade youtube@base`);
    # the core's 0004, downgraded after it, then finds nothing left to drop.
    op.drop_table(TABLE)
