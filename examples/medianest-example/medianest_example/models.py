"""The example plugin's own table: the pings it receives.

It lives on a ``MetaData`` of the plugin's own (``Base.metadata``, handed to MediaNest by
``register_tables``); the scripts in ``migrations`` create it, on the Alembic branch "example",
when ``medianest migrate`` runs (or at the first start after the plugin is installed).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from medianest import users_table


class Base(DeclarativeBase):
    """The example plugin's tables."""


class Ping(Base):
    """One ``POST /example/ping``: who sent it, what it said and when."""

    __tablename__ = "example_pings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # MediaNest's users table, reached through the public API: a user's pings go with them.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(users_table.c.id, ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_example_pings_at", "at"),)
