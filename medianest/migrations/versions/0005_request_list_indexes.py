"""Indexes of the request list: its full order (created_at, id) and its counts (type, status).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:55:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch:
        batch.drop_index("ix_requests_created_at")
        batch.create_index("ix_requests_created_at_id", ["created_at", "id"], unique=False)
        batch.create_index("ix_requests_type_status", ["type", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch:
        batch.drop_index("ix_requests_type_status")
        batch.drop_index("ix_requests_created_at_id")
        batch.create_index("ix_requests_created_at", ["created_at"], unique=False)
