"""What each media server's answer says of the service it runs ("Plex"), shown to people as
"Available in Plex"; the plugin that answers says it, the core names no service.

The youtube plugin's table, created by 0004, is the plugin's own now (its branch adopts it):
nothing here touches it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_availability", schema=None) as batch:
        # Answers stored before say nothing of their service: the next check fills it in.
        batch.add_column(
            sa.Column("service", sa.String(length=64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("media_availability", schema=None) as batch:
        batch.drop_column("service")
