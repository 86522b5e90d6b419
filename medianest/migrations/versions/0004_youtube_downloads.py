"""YouTube downloads: one row per video, playlist or channel a user asked for.

The table is the youtube plugin's own now: its first migration (youtube_0001) adopts it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:15:10.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "youtube_downloads",
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
    with op.batch_alter_table("youtube_downloads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_youtube_downloads_source", ["user_id", "kind", "source_id"], unique=False
        )
        batch_op.create_index("ix_youtube_downloads_status", ["status"], unique=False)
        batch_op.create_index(
            "ix_youtube_downloads_user_id_created_at", ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    # The table is the youtube plugin's since its migration youtube_0001 adopted it; that
    # branch depends on this revision, so it is downgraded first and drops the table itself.
    if "youtube_downloads" not in sa.inspect(op.get_bind()).get_table_names():
        return
    with op.batch_alter_table("youtube_downloads", schema=None) as batch_op:
        batch_op.drop_index("ix_youtube_downloads_user_id_created_at")
        batch_op.drop_index("ix_youtube_downloads_status")
        batch_op.drop_index("ix_youtube_downloads_source")

    op.drop_table("youtube_downloads")
