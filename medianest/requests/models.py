"""The request workflow's tables: media items, their availability, requests, their seasons and
approvals, and the notifications people are sent about them.

They share the kernel's declarative ``Base`` (one metadata, one migration history for the
product's own tables); Alembic migrations in ``medianest/migrations`` create them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..core.models import Base, JsonType, utcnow


class MediaItem(Base):
    """A film, series or video MediaNest knows of, in Plex or not yet.

    Films and series are known by their TMDB id (one row per type and id); what TMDB said of
    them (year, poster, overview, seasons) is kept in ``metadata`` for the pages.
    """

    __tablename__ = "media_items"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    plex_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(16))
    tmdb_id: Mapped[int | None] = mapped_column(Integer)
    tvdb_id: Mapped[int | None] = mapped_column(Integer)
    imdb_id: Mapped[str | None] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    file_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("type", "tmdb_id", name="uq_media_items_type_tmdb_id"),)


class MediaAvailability(Base):
    """Whether one media server holds a film or series, as its last check found.

    Kept per (media, server) so that several Plex servers each have their own answer.
    """

    __tablename__ = "media_availability"

    media_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("media_items.id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    server_name: Mapped[str] = mapped_column(String(255))
    # What people call the service the server runs, as the plugin that answered says it
    # ("Plex"); empty in answers stored before it was kept.
    service: Mapped[str] = mapped_column(String(64), default="")
    # The plugin that answered (``plex``).
    source: Mapped[str] = mapped_column(String(64))
    available: Mapped[bool] = mapped_column(Boolean, default=False)
    # The server's own id of the item (Plex's rating key).
    key: Mapped[str | None] = mapped_column(String(64))
    # The check that found this answer (a later check that finds the same does not write).
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SeasonAvailability(Base):
    """How much of one season of a series a media server holds."""

    __tablename__ = "season_availability"

    media_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("media_items.id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    season: Mapped[int] = mapped_column(Integer, primary_key=True)
    present: Mapped[int] = mapped_column(Integer, default=0)
    # Episodes the server knows of (Plex knows only those it has).
    known: Mapped[int] = mapped_column(Integer, default=0)
    # Episode numbers present, where the server says which; ``None`` when only counted.
    episodes: Mapped[list[int] | None] = mapped_column(JsonType)


class MediaRequest(Base):
    """A user's request for a media item; its history lives in :class:`Approval` rows.

    ``status`` moves through the states of :mod:`medianest.requests.workflow`. Approved requests are
    the fulfilment queue: a process takes one by setting ``claimed_until`` (a lease), so a
    process that dies mid-fulfilment leaves it to be taken again once the lease runs out.
    """

    __tablename__ = "requests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media_items.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default="pending")
    is_4k: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why it was declined or why fulfilment failed, in words.
    reason: Mapped[str | None] = mapped_column(Text)
    # Progress in the download queues, the service's id of the added item, ...
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        # The request list filters on status and shows the newest first.
        Index("ix_requests_status_created_at", "status", "created_at"),
        Index("ix_requests_user_id_created_at", "user_id", "created_at"),
        Index("ix_requests_media_id", "media_id"),
        # The list's full order (newest first, ties by id): filters that match most requests
        # read the newest rows in order and stop at the page, instead of sorting every match.
        Index("ix_requests_created_at_id", "created_at", "id"),
        # The list's counts per status, by kind.
        Index("ix_requests_type_status", "type", "status"),
    )


class RequestSeason(Base):
    """A season a series request asks for. Requests for single episodes will add a table of
    their own beside this one."""

    __tablename__ = "request_seasons"

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True
    )
    season: Mapped[int] = mapped_column(Integer, primary_key=True)


class Approval(Base):
    """One decision or status change on a request: who, when, and why."""

    __tablename__ = "approvals"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    approved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(24))
    comments: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_approvals_request_id", "request_id"),)


class Notification(Base):
    """Something a user is told in the app (the bell in the navigation bar)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(500))
    message: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_notifications_user_id_read_at", "user_id", "read_at"),)
