"""The youtube plugin's own table, on a MetaData of its own: ``medianest migrate`` creates it
from the scripts in ``migrations`` (the plugin's Alembic branch, "youtube").

Until this release the table belonged to MediaNest's core (its migration 0004 created it);
the plugin's first migration adopts it as it is, rows included.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from medianest import JsonType, users_table


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The youtube plugin's tables (``Base.metadata`` is what ``register_tables`` returns)."""

    type_annotation_map = {dict[str, Any]: JsonType, list[str]: JsonType}


class YouTubeDownload(Base):
    """A YouTube video, playlist or channel a user asked to download into the library.

    The row is what the user sees (status, progress, reason); the job queue only carries the
    work. ``heartbeat_at`` is refreshed while a worker downloads, so a row whose worker died
    is noticed and retried or failed instead of staying "downloading" for ever.
    """

    __tablename__ = "youtube_downloads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(users_table.c.id, ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    # "video", "playlist" or "channel"; with ``source_id`` it tells duplicates apart.
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    # quality, container, audio_only
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # waiting, queued, downloading, completed, failed or cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    percent: Mapped[float] = mapped_column(default=0.0)
    # The playlist item being downloaded (1-based) and how many there are.
    item: Mapped[int] = mapped_column(default=0)
    items: Mapped[int] = mapped_column(default=0)
    # Kibibytes on disk once done (an integer column holds 2 TiB of them).
    size_kib: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    folder: Mapped[str | None] = mapped_column(Text)
    files: Mapped[list[str]] = mapped_column(JsonType, default=list)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_youtube_downloads_user_id_created_at", "user_id", "created_at"),
        Index("ix_youtube_downloads_status", "status"),
        Index("ix_youtube_downloads_source", "user_id", "kind", "source_id"),
    )
