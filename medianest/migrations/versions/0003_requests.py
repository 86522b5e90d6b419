"""Media requests: requested seasons, availability per media server, notifications.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:54:26.383556
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Rows written before this revision get these values; new rows get them from the models.
EPOCH = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "media_availability",
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media_items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("media_id", "server_id"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_notifications_user_id_read_at", "notifications", ["user_id", "read_at"], unique=False
    )
    op.create_table(
        "season_availability",
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("season", sa.Integer(), nullable=False),
        sa.Column("present", sa.Integer(), nullable=False),
        sa.Column("known", sa.Integer(), nullable=False),
        sa.Column("episodes", JSON, nullable=True),
        sa.ForeignKeyConstraint(["media_id"], ["media_items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("media_id", "server_id", "season"),
    )
    op.create_table(
        "request_seasons",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("season", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", "season"),
    )
    with op.batch_alter_table("media_items") as batch:
        batch.add_column(sa.Column("tmdb_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tvdb_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("imdb_id", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column(
                "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=EPOCH
            )
        )
        batch.create_unique_constraint("uq_media_items_type_tmdb_id", ["type", "tmdb_id"])
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("is_4k", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=EPOCH
            )
        )
        batch.create_index("ix_requests_created_at", ["created_at"], unique=False)
    # The defaults were for existing rows only; the models set these columns themselves.
    for table, columns in (
        ("media_items", ["updated_at"]),
        ("requests", ["is_4k", "attempts", "updated_at"]),
    ):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_created_at")
        batch.drop_column("updated_at")
        batch.drop_column("claimed_until")
        batch.drop_column("attempts")
        batch.drop_column("reason")
        batch.drop_column("is_4k")
    with op.batch_alter_table("media_items") as batch:
        batch.drop_constraint("uq_media_items_type_tmdb_id", type_="unique")
        batch.drop_column("updated_at")
        batch.drop_column("imdb_id")
        batch.drop_column("tvdb_id")
        batch.drop_column("tmdb_id")
    op.drop_table("request_seasons")
    op.drop_table("season_availability")
    op.drop_index("ix_notifications_user_id_read_at", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("media_availability")
