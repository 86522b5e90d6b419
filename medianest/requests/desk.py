"""The request desk: takes requests, has them decided, fulfilled and followed until they are in
Plex, and tells people along the way.

Approved requests are the fulfilment queue, kept in the database: a process takes one with a
lease (:func:`medianest.requests.workflow.claim`), asks the ``fulfil_request`` hook to carry it out,
and records the outcome. A process that dies in between leaves the lease to run out and the
request to be taken again, on restart or by another process; the arr plugin looks before it
adds, so nothing is added twice. Every process also follows the requests in progress (download
queues through ``request_progress``, Plex through ``check_availability``) on an interval, and at
once when a plugin reports a change (a webhook, a library scan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..core import hookspecs
from ..core.auth import CurrentUser, Permission
from ..core.errors import ApiError
from ..core.extensions import (
    Availability,
    FulfilmentResult,
    MediaDetails,
    MediaNotFound,
    Notice,
    NoticeKind,
    Progress,
    RequestInfo,
)
from ..core.memory import give_back
from ..core.metrics import REQUEST_DECISIONS
from ..core.plugins import PluginRegistry
from ..core.settings import Settings
from ..core.ws import WebSocketHub
from . import workflow as requests
from .notifications import ME_TOPIC, Notifier
from .workflow import Holding, RequestRecord

if TYPE_CHECKING:
    from ..core.cache import Cache

log = logging.getLogger(__name__)

# Live events about every request, for the people who approve them.
REQUESTS_TOPIC = "requests"
# Media items a tracking round reads and checks at a time.
TRACK_BATCH = 200
MANAGE = Permission.MANAGE_REQUESTS.value
DECISIONS = {"approve": "approved", "decline": "declined"}
# Overseerr's names for where a media item has got to, for the outgoing notices.
MEDIA_STATUS = {
    "pending": "PENDING",
    "approved": "PROCESSING",
    "processing": "PROCESSING",
    "partially_available": "PARTIALLY_AVAILABLE",
    "available": "AVAILABLE",
    "declined": "UNKNOWN",
    "failed": "UNKNOWN",
}


def summary(record: RequestRecord) -> dict[str, Any]:
    """What live events say of a request."""
    return {
        "id": str(record.id),
        "status": record.status,
        "status_text": requests.STATUS_WORDS[record.status],
        "label": record.label,
        "title": record.title,
        "media_type": record.media_type,
        "tmdb_id": record.tmdb_id,
        "seasons": list(record.seasons),
        "requested_by": record.username,
        "reason": record.reason,
        "progress": record.details.get("progress"),
    }


def progress_summary(items: Sequence[Progress]) -> dict[str, Any] | None:
    """One line of progress for a request out of its queue items (a series has several)."""
    if not items:
        return None
    etas = [p.eta for p in items if p.eta is not None]
    states = {p.state for p in items}
    state = next(
        (
            s
            for s in ("failed", "warning", "downloading", "importing", "paused", "queued")
            if s in states
        ),
        items[0].state,
    )
    return {
        "percent": round(sum(p.percent for p in items) / len(items), 1),
        "state": state,
        "eta": max(etas).isoformat() if etas else None,
        "items": [
            {
                "title": p.title,
                "percent": round(p.percent, 1),
                "state": p.state,
                "eta": p.eta.isoformat() if p.eta else None,
                "instance": p.instance,
            }
            for p in items
        ],
    }


def status_from(record: RequestRecord, holding: Holding) -> str | None:
    """Where Plex's holding puts a request: available, partly available, or no change."""
    if record.media_type == "movie":
        return "available" if holding.available else None
    wanted = set(record.seasons)
    complete = holding.complete_seasons()
    if wanted and wanted <= complete:
        return "available"
    if wanted & (complete | holding.partial_seasons()):
        return "partially_available"
    return None


class RequestDesk:
    """Everything that happens to requests, for the views and the background work."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        registry: PluginRegistry,
        hub: WebSocketHub,
        notifier: Notifier,
        cache: Cache,
    ) -> None:
        self.engine = engine
        self.cache = cache
        # Every write below that a list of requests shows takes a new generation.
        self.generation = requests.Generation(cache)
        self.settings = settings
        self.registry = registry
        self.hub = hub
        self.notifier = notifier
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._checks: set[asyncio.Task[None]] = set()
        self._track_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.registry.media_listener = self.media_changed
        self._tasks = [
            asyncio.create_task(self._fulfil_loop(), name="requests:fulfil"),
            asyncio.create_task(self._track_loop(), name="requests:track"),
        ]

    async def close(self) -> None:
        self.registry.media_listener = None
        tasks = [*self._tasks, *self._checks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """Look for approved requests to fulfil now."""
        self._wake.set()

    # --- looking things up ----------------------------------------------------------------

    async def lookup(self, media_type: str, tmdb_id: int) -> MediaDetails:
        kind = requests.KIND.get(media_type, "title")
        try:
            answer = await self.registry.call_first(
                hookspecs.lookup_media, media_type=media_type, tmdb_id=tmdb_id
            )
        except MediaNotFound as exc:
            raise ApiError(404, str(exc)) from None
        if answer is None:
            who = self._who_could("lookup_media")
            raise ApiError(
                503,
                f"MediaNest cannot look up a {kind} right now: "
                + (
                    f"{who} is off or not answering. An admin can check it under Integrations."
                    if who
                    else "no integration that looks films and series up is installed."
                ),
            )
        return answer[1]

    def _who_could(self, hook: str) -> str | None:
        """The integrations that could have answered ``hook`` (installed, enabled or not), as
        the Integrations page names them ("the tmdb integration"): the core names no service
        of its own."""
        names = self.registry.implementers(hook)
        return f"the {' or the '.join(names)} integration" if names else None

    async def availability(self, media_type: str, ids: Mapping[str, str]) -> list[Availability]:
        answers = await self.registry.call_each(
            hookspecs.check_availability, ids=dict(ids), media_type=media_type
        )
        return [a for _, a in answers if isinstance(a, Availability)]

    async def holding(self, details: MediaDetails) -> tuple[Holding, list[Availability]]:
        answers = await self.availability(details.media_type, details.ids)
        return requests.holding_from(answers, requests.media_metadata(details)), answers

    # --- taking requests ------------------------------------------------------------------

    async def create(
        self, user: CurrentUser, media_type: str, tmdb_id: int, seasons: Sequence[int], is_4k: bool
    ) -> tuple[requests.Created, RequestRecord]:
        needed = Permission.REQUEST_MOVIES if media_type == "movie" else Permission.REQUEST_TV
        if not user.has(needed):
            kind = "films" if media_type == "movie" else "series"
            raise ApiError(403, f"You may not request {kind}; ask an admin for the permission.")
        details = await self.lookup(media_type, tmdb_id)
        if media_type == "movie" and seasons:
            raise ApiError(422, "A film has no seasons: leave `seasons` out.")
        if media_type == "tv":
            known = {s.number for s in details.seasons}
            if not seasons:
                raise ApiError(422, f"Say which seasons of {details.title} you want.")
            unknown = sorted(set(seasons) - known)
            if unknown:
                raise ApiError(
                    422,
                    f"{details.title} has no {requests.listed(unknown)}; "
                    f"it has {requests.listed(known) if known else 'no seasons yet'}.",
                )
        holding, answers = await self.holding(details)
        created = await requests.create(
            self.engine, self.settings, user, details, tmdb_id, seasons, is_4k, holding, answers
        )
        await self.generation.bump()
        record = created.record or await requests.get(self.engine, created.request_id)
        await self._announce(record, "updated" if created.extended else "created")
        if created.extended:
            return created, record
        if created.status == "approved":
            REQUEST_DECISIONS.labels("approved").inc()
            await self._tell(
                record, "MEDIA_AUTO_APPROVED", "Approved automatically.", managers=True
            )
            self.wake()
        else:
            await self._tell(
                record, "MEDIA_PENDING", f"{record.username} asked for it.", managers=True
            )
        return created, record

    async def decide(
        self, user: CurrentUser, request_id: uuid.UUID, action: str, comment: str | None
    ) -> RequestRecord:
        """Approve, decline or retry one request as ``user`` (who may manage requests)."""
        await requests.move(self.engine, request_id, action, actor=user.id, comment=comment)
        await self.generation.bump()
        if action in DECISIONS:
            REQUEST_DECISIONS.labels(DECISIONS[action]).inc()
        record = await requests.get(self.engine, request_id)
        await self._announce(record, "updated")
        if action == "decline":
            why = f" Reason: {comment}" if comment else ""
            await self._tell(record, "MEDIA_DECLINED", f"Declined by {user.username}.{why}")
        elif action == "approve":
            await self._tell(record, "MEDIA_APPROVED", f"Approved by {user.username}.")
        if record.status == "approved":
            self.wake()
        return record

    async def delete(self, user: CurrentUser, request_id: uuid.UUID) -> RequestRecord:
        record = await requests.delete_request(self.engine, user, request_id)
        await self.generation.bump()
        await self._announce(record, "deleted")
        return record

    # --- fulfilment -----------------------------------------------------------------------

    async def _fulfil_loop(self) -> None:
        while True:
            try:
                await self.fulfil_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fulfilling approved requests failed")
            # Other processes' approvals and expired leases are found on the next round.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._round())
            self._wake.clear()

    def _round(self) -> float:
        return min(10.0, self.settings.fulfilment_lease / 2)

    async def fulfil_due(self) -> int:
        """Fulfil the approved requests nobody holds; returns how many were taken."""
        taken = await requests.claim(self.engine, self.settings.fulfilment_lease)
        for request_id in taken:
            await self._fulfil(request_id)
        return len(taken)

    async def _fulfil(self, request_id: uuid.UUID) -> None:
        try:
            record = await requests.get(self.engine, request_id)
        except requests.NotFound:
            return  # deleted meanwhile
        info = RequestInfo(
            id=str(record.id),
            media_type=record.media_type,
            title=f"{record.title} ({record.year})" if record.year else record.title,
            ids=record.ids,
            details={
                "seasons": list(record.seasons),
                "is_4k": record.is_4k,
                "is_anime": bool(record.details.get("is_anime")),
            },
        )
        answer = await self.registry.call_first(hookspecs.fulfil_request, request=info)
        if answer is None or not isinstance(answer[1], FulfilmentResult):
            who = self._who_could("fulfil_request")
            result = FulfilmentResult(
                False,
                f"Nothing can fulfil {requests.KIND[record.media_type]} requests: an admin can "
                + (
                    f"set up {who} under Integrations, then retry."
                    if who
                    else "install an integration that fulfils them, then retry."
                ),
            )
            by = None
        else:
            by, result = answer
        try:
            if result.ok:
                given = {"fulfilled_by": by, "external_id": result.external_id}
                await requests.move(
                    self.engine,
                    record.id,
                    "process",
                    comment=result.message or None,
                    details=given,
                )
                # What the move wrote, without reading it back.
                record = replace(
                    record, status="processing", reason=None, details={**record.details, **given}
                )
            else:
                await requests.move(self.engine, record.id, "fail", comment=result.message)
                record = replace(record, status="failed", reason=result.message)
        except ApiError as exc:  # declined or deleted while Sonarr or Radarr was asked
            log.info("request %s changed during fulfilment: %s", record.id, exc.message)
            return
        await self.generation.bump()
        await self._announce(record, "updated")
        if not result.ok:
            await self._tell(record, "MEDIA_FAILED", result.message, managers=True)
        else:
            # What was added may be in the queue (or even in Plex) already.
            self._check_media_soon(record.media_id)

    # --- following requests in progress ---------------------------------------------------

    async def _track_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.request_check_interval)
            try:
                await self.track()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking requests in progress failed")

    async def media_changed(self, media_type: str, ids: Mapping[str, str]) -> None:
        """A plugin's report that something changed: check the requests concerned soon."""
        self._check_soon(media_type, ids)

    def _check_soon(self, media_type: str, ids: Mapping[str, str]) -> None:
        self._start_check(ids=dict(ids) or None)

    def _check_media_soon(self, media_id: uuid.UUID) -> None:
        self._start_check(media_id=media_id)

    def _start_check(
        self, *, ids: Mapping[str, str] | None = None, media_id: uuid.UUID | None = None
    ) -> None:
        task = asyncio.create_task(self._check(ids, media_id))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self, ids: Mapping[str, str] | None, media_id: uuid.UUID | None) -> None:
        try:
            await self.track(ids, media_id=media_id)
        except Exception:
            log.exception("checking requests after a change failed")

    async def track(
        self, ids: Mapping[str, str] | None = None, *, media_id: uuid.UUID | None = None
    ) -> None:
        """Bring the requests in progress (those of the media with ``ids``, of the media item
        ``media_id``, or all) up to date with the download queues and Plex.

        The media items are taken :data:`TRACK_BATCH` at a time, so that a round over thousands
        of requests holds a batch in memory, not all of them. What the media servers hold is
        asked of each media item, then saved for the batch at once (only what changed is
        written); the requests that moved or progressed are written one by one. The event
        loop is handed back between media items, so that a busy server keeps answering.
        """
        async with self._track_lock:
            if media_id is not None:
                media = [media_id]
            else:
                media = await requests.tracked_media(self.engine, ids)
            for start in range(0, len(media), TRACK_BATCH):
                await self._track_batch(media[start : start + TRACK_BATCH])
        if len(media) > TRACK_BATCH:
            give_back()  # what the round read is garbage now

    async def _track_batch(self, media: Sequence[uuid.UUID]) -> None:
        by_media: dict[uuid.UUID, list[RequestRecord]] = {}
        for record in await requests.tracked(self.engine, media):
            by_media.setdefault(record.media_id, []).append(record)
        looked: list[tuple[list[RequestRecord], list[Availability]]] = []
        for group in by_media.values():
            first = group[0]
            looked.append((group, await self.availability(first.media_type, first.ids)))
            await asyncio.sleep(0)
        await requests.save_availabilities(
            self.engine, {group[0].media_id: answers for group, answers in looked}
        )
        for group, answers in looked:
            await self._track_media(group, answers)
            await asyncio.sleep(0)

    async def _track_media(self, group: list[RequestRecord], answers: list[Availability]) -> None:
        first = group[0]
        holding = requests.holding_from(answers, first.metadata)
        items: list[Progress] | None = None
        for record in group:
            target = status_from(record, holding)
            if target is not None and target != record.status:
                await self._arrive(record, target, holding)
            elif record.status != "approved":
                if items is None:  # asked once per media item, and only when needed
                    found = await self.registry.call_each(
                        hookspecs.request_progress, ids=first.ids, media_type=first.media_type
                    )
                    items = [
                        p for _, answer in found for p in (answer or ()) if isinstance(p, Progress)
                    ]
                await self._progress(record, items)

    async def _arrive(self, record: RequestRecord, target: str, holding: Holding) -> None:
        where = holding.held_by()
        if target == "available":
            message = f"Ready to watch in {where}."
        else:
            have = sorted(
                set(record.seasons) & (holding.complete_seasons() | holding.partial_seasons())
            )
            message = f"{requests.listed(have).capitalize()} in {where} so far."
        try:
            await requests.move(
                self.engine,
                record.id,
                "complete" if target == "available" else "partial",
                comment=message,
                details={"progress": None},
            )
        except ApiError:
            return  # another process moved it first, and told everyone
        await self.generation.bump()
        record = await requests.get(self.engine, record.id)
        await self._announce(record, "updated")
        await self._tell(record, "MEDIA_AVAILABLE", message)

    async def _progress(self, record: RequestRecord, items: Sequence[Progress]) -> None:
        now = progress_summary(_for_request(record, items))
        if now == record.details.get("progress"):
            return
        await requests.set_details(self.engine, record.id, {"progress": now})
        await self.generation.bump()
        record = await requests.get(self.engine, record.id)
        await self._announce(record, "progress")

    # --- telling people -------------------------------------------------------------------

    async def _announce(self, record: RequestRecord, event: str) -> None:
        data = summary(record)
        await self.hub.publish(ME_TOPIC, f"request-{event}", data, user_id=str(record.user_id))
        await self.hub.publish(REQUESTS_TOPIC, event, data, permission=MANAGE)
        self.registry.emit(f"request.{event}", data)

    async def _tell(
        self, record: RequestRecord, kind: NoticeKind, message: str, *, managers: bool = False
    ) -> None:
        recipients: list[uuid.UUID] = []
        if managers:
            recipients = [m for m in await self.notifier.managers() if m != record.user_id]
        if kind != "MEDIA_PENDING" and kind != "MEDIA_AUTO_APPROVED":
            recipients.insert(0, record.user_id)
        notice = Notice(
            kind=kind,
            subject=record.label,
            message=message,
            image=record.poster_url,
            url=f"/requests/{record.id}",
            media={
                "media_type": record.media_type,
                "tmdbId": str(record.tmdb_id or ""),
                "tvdbId": str(record.tvdb_id or ""),
                "status": MEDIA_STATUS[record.status] if not record.is_4k else "UNKNOWN",
                "status4k": MEDIA_STATUS[record.status] if record.is_4k else "UNKNOWN",
            },
            request={
                "request_id": str(record.id),
                "requestedBy_username": record.username,
                "requestedBy_email": record.email or "",
                "requestedBy_avatar": "",
                "requested_seasons": list(record.seasons),
            },
        )
        await self.notifier.send(notice, recipients)


def _for_request(record: RequestRecord, items: Iterable[Progress]) -> list[Progress]:
    """The queue items of a series request's own seasons (titles read "Show S01E02")."""
    chosen = list(items)
    if record.media_type != "tv" or not record.seasons:
        return chosen
    wanted = {f"S{n:02d}" for n in record.seasons}
    mine = [p for p in chosen if any(code in p.title for code in wanted)]
    return mine or chosen
