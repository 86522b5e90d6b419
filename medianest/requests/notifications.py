"""Telling people: the in-app notification list, live events, and the ``notify`` hook.

A notice is written to each recipient's list (the bell in the navigation bar), pushed to their
open pages over the websocket, and handed to every plugin's ``notify`` hook (the webhook plugin
sends it on) in the background, so a slow channel never holds up the request that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import String, Table, func, insert, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncEngine

from ..core import hookspecs
from ..core.auth import Permission
from ..core.cache import Cache
from ..core.db import writing
from ..core.extensions import Notice
from ..core.models import User
from ..core.plugins import PluginRegistry
from ..core.ws import WebSocketHub
from .models import Notification

log = logging.getLogger(__name__)

# The websocket topic of a user's own news: their notifications and their requests' changes.
ME_TOPIC = "me"
# Every page shows the unread count on the bell: kept in the cache, and written there anew
# by every change of a user's list; the TTL bounds what a race between processes can leave.
UNREAD_SECONDS = 60.0
notifications_t = cast(Table, Notification.__table__)
users_t = cast(Table, User.__table__)


@dataclass(frozen=True)
class NotificationRecord:
    id: int
    kind: str
    subject: str
    message: str
    link: str | None
    created_at: datetime
    read: bool


MANAGERS_KEY = "notify:managers"
MANAGERS_TTL = 10.0


class Notifier:
    """Writes notices to people's lists, pushes them live and hands them to the plugins."""

    def __init__(
        self, engine: AsyncEngine, hub: WebSocketHub, registry: PluginRegistry, cache: Cache
    ) -> None:
        self._engine = engine
        self._hub = hub
        self._registry = registry
        self._cache = cache
        self._tasks: set[asyncio.Task[None]] = set()

    async def managers(self) -> list[uuid.UUID]:
        """Everyone who approves requests: admins and holders of "manage requests".

        Kept in the cache for :data:`MANAGERS_TTL` seconds: every request made or decided tells
        them. Changes made on the users page are seen at once (:meth:`forget_managers`); a
        manager made otherwise (the command line, default permissions of people who sign up)
        is told from at most that long after.
        """
        kept = await self._cache.get(MANAGERS_KEY)
        if kept is not None:
            return [uuid.UUID(m) for m in kept]
        async with self._engine.connect() as conn:
            # Read only the likely ones: a community's many members hold no such permission.
            wanted = f'%"{Permission.MANAGE_REQUESTS.value}"%'
            named = sql_cast(users_t.c.permissions, String).like(wanted)
            rows = await conn.execute(
                select(users_t.c.id, users_t.c.role, users_t.c.permissions).where(
                    users_t.c.disabled.is_(False), or_(users_t.c.role == "admin", named)
                )
            )
            found = [
                user_id
                for user_id, role, permissions in rows
                if role == "admin" or Permission.MANAGE_REQUESTS in (permissions or ())
            ]
        await self._cache.set(MANAGERS_KEY, [str(m) for m in found], MANAGERS_TTL)
        return found

    async def forget_managers(self) -> None:
        """Someone's role, permissions or access changed: read the managers afresh."""
        await self._cache.delete(MANAGERS_KEY)

    async def send(self, notice: Notice, recipients: Iterable[uuid.UUID]) -> None:
        """Tell ``recipients`` in the app and live, and every plugin's ``notify`` hook."""
        people = list(dict.fromkeys(recipients))
        now = datetime.now(UTC)
        if people:
            async with writing(self._engine) as conn:
                await conn.execute(
                    insert(notifications_t),
                    [
                        {
                            "user_id": person,
                            "kind": notice.kind,
                            "subject": notice.subject[:500],
                            "message": notice.message,
                            "link": notice.url,
                            "created_at": now,
                        }
                        for person in people
                    ],
                )
            counts = await self.unread_counts(people)
            for person in people:
                await self._keep_unread(person, counts.get(person, 0))
                await self._hub.publish(
                    ME_TOPIC,
                    "notification",
                    {
                        "kind": notice.kind,
                        "subject": notice.subject,
                        "message": notice.message,
                        "link": notice.url,
                        "unread": counts.get(person, 0),
                    },
                    user_id=str(person),
                )
        self._in_background(self._hand_to_plugins(notice))

    async def _hand_to_plugins(self, notice: Notice) -> None:
        try:
            await self._registry.call_each(hookspecs.notify, notice=notice)
        except Exception:
            log.exception("handing %s to the notify hooks failed", notice.kind)

    def _in_background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def unread_counts(self, people: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(notifications_t.c.user_id, func.count())
                .where(notifications_t.c.user_id.in_(people), notifications_t.c.read_at.is_(None))
                .group_by(notifications_t.c.user_id)
            )
            return {user_id: count for user_id, count in rows}

    async def unread(self, user_id: uuid.UUID) -> int:
        """How many of the user's notifications are unread (the bell's number)."""
        kept = await self._cache.get(_unread_key(user_id))
        if isinstance(kept, int):
            return kept
        count = (await self.unread_counts([user_id])).get(user_id, 0)
        await self._keep_unread(user_id, count)
        return count

    async def _keep_unread(self, user_id: uuid.UUID, count: int) -> None:
        await self._cache.set(_unread_key(user_id), count, UNREAD_SECONDS)

    async def list_for(
        self, user_id: uuid.UUID, limit: int = 50, before: int | None = None
    ) -> list[NotificationRecord]:
        conditions = [notifications_t.c.user_id == user_id]
        if before is not None:
            conditions.append(notifications_t.c.id < before)
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(
                    notifications_t.c.id,
                    notifications_t.c.kind,
                    notifications_t.c.subject,
                    notifications_t.c.message,
                    notifications_t.c.link,
                    notifications_t.c.created_at,
                    notifications_t.c.read_at,
                )
                .where(*conditions)
                .order_by(notifications_t.c.id.desc())
                .limit(limit)
            )
            return [
                NotificationRecord(
                    i,
                    kind,
                    subject,
                    message,
                    link,
                    at if at.tzinfo else at.replace(tzinfo=UTC),
                    read_at is not None,
                )
                for i, kind, subject, message, link, at, read_at in rows
            ]

    async def mark_read(self, user_id: uuid.UUID, ids: list[int] | None) -> int:
        """Mark the user's notifications ``ids`` (all when ``None``) read; returns how many."""
        conditions = [notifications_t.c.user_id == user_id, notifications_t.c.read_at.is_(None)]
        if ids is not None:
            conditions.append(notifications_t.c.id.in_(ids))
        async with writing(self._engine) as conn:
            done = await conn.execute(
                update(notifications_t).where(*conditions).values(read_at=datetime.now(UTC))
            )
        unread = (await self.unread_counts([user_id])).get(user_id, 0)
        await self._keep_unread(user_id, unread)
        await self._hub.publish(
            ME_TOPIC, "notifications-read", {"unread": unread}, user_id=str(user_id)
        )
        return int(done.rowcount)


def _unread_key(user_id: uuid.UUID) -> str:
    return f"notifications:unread:{user_id}"
