"""The download rows: what users see of their downloads, and the rules that admit them.

A row is the truth a user sees (status, progress, reason); the job queue only carries the work.
A new download is refused when it repeats one the user already has, or goes past their quotas
(downloads per hour, storage). Admitted downloads wait their turn when the user already has as
many running as allowed ("waiting"), else are handed to the queue ("queued").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from medianest import ApiError, PluginContext, user_quota, writing

from .links import Link
from .models import YouTubeDownload
from .settings import Settings

JOB = "youtube.download"
TOPIC = "youtube"
ACTIVE = ("waiting", "queued", "downloading")
FINISHED = ("completed", "failed", "cancelled")
T = YouTubeDownload
# A token that changes with every write to the rows: what is cached of them (the dashboard
# widget) is kept under it, so a write anywhere (this process, a worker) makes it stale at once.
GENERATION = "youtube:downloads:generation"
GENERATION_TTL = 86_400.0


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def as_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    data = dict(row)
    for key in ("heartbeat_at", "created_at", "started_at", "finished_at"):
        data[key] = _aware(data.get(key))
    return data


async def generation(plugin: PluginContext) -> str:
    """The token of the rows as they are now (see :data:`GENERATION`)."""
    return str(await plugin.cache.get(GENERATION) or "0")


async def _written(plugin: PluginContext) -> None:
    await plugin.cache.set(GENERATION, uuid.uuid4().hex, GENERATION_TTL)


async def get(plugin: PluginContext, download_id: uuid.UUID) -> dict[str, Any] | None:
    async with plugin.db.connect() as conn:
        row = (
            (await conn.execute(select(T.__table__).where(T.id == download_id))).mappings().first()
        )
    return as_dict(row) if row else None


async def of_user(
    plugin: PluginContext, user_id: uuid.UUID, limit: int = 50
) -> list[dict[str, Any]]:
    async with plugin.db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    select(T.__table__)
                    .where(T.user_id == user_id)
                    .order_by(T.created_at.desc())
                    .limit(limit)
                )
            )
            .mappings()
            .all()
        )
    return [as_dict(r) for r in rows]


async def change(
    plugin: PluginContext, download_id: uuid.UUID, *, when: tuple[str, ...] = (), **values: Any
) -> bool:
    """Update one row (only while its status is one of ``when``, if given); True if it was."""
    statement = update(T).where(T.id == download_id)
    if when:
        statement = statement.where(T.status.in_(when))
    async with writing(plugin.db) as conn:
        result = await conn.execute(statement.values(**values))
    if result.rowcount:
        await _written(plugin)
    return bool(result.rowcount)


async def announce(plugin: PluginContext, row: Mapping[str, Any]) -> None:
    """Tell open pages of a status change. Events carry ids and numbers, never titles: every
    signed-in page may subscribe to the topic."""
    await plugin.publish(
        TOPIC,
        "status",
        {
            "id": str(row["id"]),
            "status": row["status"],
            "percent": row.get("percent", 0.0),
            "item": row.get("item", 0),
            "items": row.get("items", 0),
        },
    )


# --- admission --------------------------------------------------------------------------------


def _gib(kib: int) -> str:
    if kib < 1024 * 1024:
        return f"{kib / 1024:.1f} MB"
    return f"{kib / 1024 / 1024:.2f} GB"


async def admit(
    plugin: PluginContext,
    user_id: uuid.UUID,
    username: str,
    link: Link,
    title: str,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Store a new download for ``user_id``, or refuse it (an ApiError saying why)."""
    settings: Settings = plugin.settings
    since = now() - timedelta(hours=1)
    async with plugin.db.connect() as conn:
        same = (
            await conn.execute(
                select(T.status, T.title)
                .where(
                    T.user_id == user_id,
                    T.kind == link.kind,
                    T.source_id == link.source_id,
                    T.status.in_((*ACTIVE, "completed")),
                )
                .limit(1)
            )
        ).first()
        recent = (
            await conn.execute(
                select(func.count()).where(T.user_id == user_id, T.created_at >= since)
            )
        ).scalar_one()
        stored = (
            await conn.execute(
                select(func.coalesce(func.sum(T.size_kib), 0)).where(
                    T.user_id == user_id, T.status == "completed"
                )
            )
        ).scalar_one()
    if same is not None:
        what = "already downloaded" if same.status == "completed" else "already in your downloads"
        raise ApiError(409, f"This {link.kind} is {what}: {same.title or link.url}.")
    own = await user_quota(plugin.db, user_id, "downloads")
    per_hour = int(own["limit"]) if own and "limit" in own else settings.downloads_per_hour
    if recent >= per_hour:
        raise ApiError(
            429,
            f"You have started {recent} downloads in the past hour, your limit is {per_hour}; "
            "try again later.",
        )
    budget_kib = int(settings.storage_per_user_gb * 1024 * 1024)
    if stored >= budget_kib:
        raise ApiError(
            413,
            f"Your downloads already take {_gib(stored)} of your {_gib(budget_kib)}; "
            "ask an administrator to make room.",
        )
    download_id = uuid.uuid4()
    row: dict[str, Any] = {
        "id": download_id,
        "user_id": user_id,
        "url": link.url,
        "kind": link.kind,
        "source_id": link.source_id,
        "title": title[:500],
        "options": {**options, "user": username},
        "status": "waiting",
        "reason": None,
        "percent": 0.0,
        "item": 0,
        "items": 0,
        "size_kib": 0,
        "attempts": 0,
        "folder": None,
        "files": [],
        "created_at": now(),
    }
    async with writing(plugin.db) as conn:
        await conn.execute(insert(T).values(**row))
    await _written(plugin)
    await dispatch(plugin, user_id)
    return await get(plugin, download_id) or row


async def storage_left_kib(plugin: PluginContext, user_id: uuid.UUID) -> int:
    settings: Settings = plugin.settings
    async with plugin.db.connect() as conn:
        stored = (
            await conn.execute(
                select(func.coalesce(func.sum(T.size_kib), 0)).where(
                    T.user_id == user_id, T.status == "completed"
                )
            )
        ).scalar_one()
    return int(settings.storage_per_user_gb * 1024 * 1024) - int(stored)


async def claim(plugin: PluginContext, download_id: uuid.UUID, attempt: int) -> bool:
    """Take a download for this attempt: a queued one, or one whose worker stopped sending
    heartbeats. Never one another worker is still downloading: that one is waited for (it may
    be a worker that was only slow to answer) until it finishes or goes silent."""
    settings: Settings = plugin.settings
    deadline = asyncio.get_running_loop().time() + settings.stalled_after + 5
    while True:
        stale = now() - timedelta(seconds=settings.stalled_after)
        takeable = or_(
            T.status == "queued",
            and_(
                T.status == "downloading",
                or_(T.heartbeat_at.is_(None), T.heartbeat_at < stale),
            ),
        )
        values = {
            "status": "downloading",
            "attempts": attempt,
            "heartbeat_at": now(),
            "started_at": now(),
            "percent": 0.0,
            "reason": None,
        }
        async with writing(plugin.db) as conn:
            result = await conn.execute(
                update(T).where(T.id == download_id, takeable).values(**values)
            )
        if result.rowcount:
            await _written(plugin)
            return True
        row = await get(plugin, download_id)
        if row is None or row["status"] != "downloading":
            return False
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(1)


# --- turns and the queue ----------------------------------------------------------------------


async def enqueue(plugin: PluginContext, download_id: uuid.UUID) -> None:
    if plugin.jobs is not None:
        key = str(download_id)
        await plugin.jobs.enqueue(JOB, key, download_id=key)


async def dispatch(plugin: PluginContext, user_id: uuid.UUID | None = None) -> None:
    """Hand waiting downloads to the queue while their user has fewer running than allowed,
    and queued ones again (a queue that lost them, after a restart of the embedded default,
    gets them back; one that has them ignores the repeat)."""
    settings: Settings = plugin.settings
    async with plugin.db.connect() as conn:
        statement = select(T.id, T.user_id, T.status).where(T.status.in_(ACTIVE))
        if user_id is not None:
            statement = statement.where(T.user_id == user_id)
        rows = (await conn.execute(statement.order_by(T.created_at))).all()
    busy: dict[uuid.UUID, int] = {}
    for row in rows:
        if row.status != "waiting":
            busy[row.user_id] = busy.get(row.user_id, 0) + 1
    for row in rows:
        if row.status == "queued":
            await enqueue(plugin, row.id)
        elif (
            row.status == "waiting"
            and busy.get(row.user_id, 0) < settings.concurrent_per_user
            and await change(plugin, row.id, when=("waiting",), status="queued")
        ):
            busy[row.user_id] = busy.get(row.user_id, 0) + 1
            await enqueue(plugin, row.id)
            row_now = await get(plugin, row.id)
            if row_now is not None:
                await announce(plugin, row_now)


async def reap(plugin: PluginContext, attempts: int) -> list[uuid.UUID]:
    """Downloads whose worker stopped sending heartbeats (it was killed): queued again while
    attempts remain, else failed with the reason. Returns the ids failed."""
    settings: Settings = plugin.settings
    cutoff = now() - timedelta(seconds=settings.stalled_after * 2)
    async with plugin.db.connect() as conn:
        rows = (
            await conn.execute(
                select(T.id, T.attempts).where(T.status == "downloading", T.heartbeat_at < cutoff)
            )
        ).all()
    failed = []
    for row in rows:
        if row.attempts >= attempts:
            reason = (
                f"The download stopped {row.attempts} times without finishing (its worker "
                "went away); press Retry to try again."
            )
            if await change(
                plugin,
                row.id,
                when=("downloading",),
                status="failed",
                reason=reason,
                finished_at=now(),
            ):
                failed.append(row.id)
        else:
            await change(
                plugin,
                row.id,
                when=("downloading",),
                status="queued",
                reason="The worker went away during the download; trying again.",
            )
            await enqueue(plugin, row.id)
        got = await get(plugin, row.id)
        if got is not None:
            await announce(plugin, got)
    return failed


async def count_by_status(plugin: PluginContext) -> dict[str, int]:
    """How many downloads there are of each status (the ``medianest_downloads`` gauge)."""
    async with plugin.db.connect() as conn:
        rows = await conn.execute(select(T.status, func.count()).group_by(T.status))
        return {str(status): int(count) for status, count in rows}
