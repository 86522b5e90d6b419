"""Media requests: who asked for which film or seasons, and where each request has got to.

A request moves through the states of :data:`MOVES`. Every move is one conditional ``UPDATE``
(``WHERE status IN (the states it may leave)``), so two processes or two admins never both move
the same request, plus an :class:`~medianest.core.models.Approval` row saying who, when and why.
A move from a state that does not allow it is refused with a message, never made silently.

What Plex holds is kept per (media, server) and per season (``media_availability`` and
``season_availability``), so several Plex servers and single-episode requests fit later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from sqlalchemy import Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..core.auth import CurrentUser, Permission
from ..core.db import writing
from ..core.errors import ApiError
from ..core.extensions import Availability, MediaDetails
from ..core.models import User
from ..core.settings import Settings
from .models import (
    Approval,
    MediaAvailability,
    MediaItem,
    MediaRequest,
    RequestSeason,
    SeasonAvailability,
)

if TYPE_CHECKING:
    from ..core.cache import Cache

MediaType = Literal["movie", "tv"]
Status = Literal[
    "pending",
    "approved",
    "processing",
    "partially_available",
    "available",
    "declined",
    "failed",
]
STATUSES: tuple[str, ...] = get_args(Status)
# Requests that still stand: asking again for what they cover is a duplicate. (An available
# request does not stand: if the media has gone from Plex since, it may be asked for again.)
STANDING = frozenset({"pending", "approved", "processing", "partially_available", "failed"})
# Requests whose progress and availability MediaNest follows on its own.
TRACKED = frozenset({"approved", "processing", "partially_available"})
KIND = {"movie": "film", "tv": "series"}
STATUS_WORDS = {
    "pending": "waiting for approval",
    "approved": "approved",
    "processing": "downloading",
    "partially_available": "partly available",
    "available": "available",
    "declined": "declined",
    "failed": "failed",
}

requests_t = cast(Table, MediaRequest.__table__)
media_t = cast(Table, MediaItem.__table__)
seasons_t = cast(Table, RequestSeason.__table__)
approvals_t = cast(Table, Approval.__table__)
users_t = cast(Table, User.__table__)
availability_t = cast(Table, MediaAvailability.__table__)
season_availability_t = cast(Table, SeasonAvailability.__table__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def listed(seasons: Iterable[int]) -> str:
    ordered = sorted(seasons)
    word = "season" if len(ordered) == 1 else "seasons"
    return f"{word} {', '.join(str(n) for n in ordered)}"


# --- the state machine ----------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """A change of status: to ``to``, allowed only from ``sources``."""

    to: str
    sources: frozenset[str]
    verb: str


MOVES: dict[str, Move] = {
    "approve": Move("approved", frozenset({"pending"}), "approve"),
    "decline": Move("declined", frozenset({"pending", "failed"}), "decline"),
    "retry": Move("approved", frozenset({"failed"}), "retry"),
    "process": Move("processing", frozenset({"approved"}), "start processing"),
    "fail": Move("failed", frozenset({"approved", "processing"}), "fail"),
    "partial": Move(
        "partially_available", frozenset({"approved", "processing"}), "mark partly available"
    ),
    "complete": Move(
        "available",
        frozenset({"approved", "processing", "partially_available"}),
        "mark available",
    ),
}


class NotFound(ApiError):
    def __init__(self, request_id: object) -> None:
        super().__init__(404, f"There is no request {request_id}.")


def _illegal(move: Move, status: str) -> ApiError:
    allowed = " or ".join(STATUS_WORDS[s] for s in sorted(move.sources))
    return ApiError(
        409,
        f"Cannot {move.verb} a request that is {STATUS_WORDS.get(status, status)}; "
        f"only a request that is {allowed} can be.",
    )


async def move(
    engine: AsyncEngine,
    request_id: uuid.UUID,
    action: str,
    *,
    actor: uuid.UUID | None = None,
    comment: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> str:
    """Move a request by ``action`` (a key of :data:`MOVES`); returns the status it left.

    ``comment`` is stored on the history row, and as the request's reason when it is declined
    or fails; ``details`` are merged into the request's details. Raises a 409 ``ApiError`` when
    the request is in a state the move may not leave (someone else moved it first, say).
    """
    step = MOVES[action]
    async with writing(engine) as conn:
        row = (
            await conn.execute(
                select(requests_t.c.status, requests_t.c.details).where(
                    requests_t.c.id == request_id
                )
            )
        ).first()
        if row is None:
            raise NotFound(request_id)
        if row.status not in step.sources:
            raise _illegal(step, row.status)
        values: dict[str, Any] = {
            "status": step.to,
            "updated_at": utcnow(),
            "claimed_until": None,
            "reason": comment if step.to in ("declined", "failed") else None,
        }
        if details:
            values["details"] = {**(row.details or {}), **details}
        if step.to == "approved":
            # A new round of fulfilment: drop what the last one found.
            values["details"] = {
                k: v for k, v in values.get("details", row.details or {}).items() if k != "progress"
            }
        changed = await conn.execute(
            update(requests_t)
            .where(requests_t.c.id == request_id, requests_t.c.status.in_(step.sources))
            .values(**values)
        )
        if changed.rowcount != 1:
            raise _illegal(step, "being changed by someone else")
        await conn.execute(
            insert(approvals_t).values(
                id=uuid.uuid4(),
                request_id=request_id,
                approved_by=actor,
                status=step.to,
                comments=comment,
                approved_at=utcnow(),
            )
        )
    return str(row.status)


# --- what has changed ----------------------------------------------------------------------


class Generation:
    """A token that changes with every write that a list of requests can show (a request made,
    decided, moved, deleted, its progress), kept in the cache: in Redis, so that a write in one
    process makes what every process cached of the lists stale at once.

    Lists are cached under the token they were read at; a write commits, then takes a new token,
    so the next list is read afresh. Tokens are random, never reused: a token that was lost (an
    emptied Redis, an evicted entry) is replaced by a new one, never by an earlier one.
    """

    KEY = "requests:generation"
    TTL = 86_400.0

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    async def token(self) -> str:
        found = await self.cache.get(self.KEY)
        if found is None:
            found = uuid.uuid4().hex
            await self.cache.set(self.KEY, found, self.TTL)
        return str(found)

    async def bump(self) -> None:
        await self.cache.set(self.KEY, uuid.uuid4().hex, self.TTL)


# --- reading requests -----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """A request with its media, requester and seasons, as the pages and the API show it."""

    id: uuid.UUID
    status: str
    media_type: str
    is_4k: bool
    reason: str | None
    details: Mapping[str, Any]
    attempts: int
    created_at: datetime
    updated_at: datetime
    user_id: uuid.UUID
    username: str
    email: str | None
    media_id: uuid.UUID
    title: str
    tmdb_id: int | None
    tvdb_id: int | None
    imdb_id: str | None
    metadata: Mapping[str, Any]
    seasons: tuple[int, ...] = ()

    @property
    def ids(self) -> dict[str, str]:
        found = {"tmdb": self.tmdb_id, "tvdb": self.tvdb_id, "imdb": self.imdb_id}
        return {k: str(v) for k, v in found.items() if v}

    @property
    def year(self) -> int | None:
        year = self.metadata.get("year")
        return year if isinstance(year, int) else None

    @property
    def poster_url(self) -> str | None:
        poster = self.metadata.get("poster_url")
        return poster if isinstance(poster, str) else None

    @property
    def label(self) -> str:
        """The title as people read it: "The Matrix (1999)", "Severance (2022), seasons 1, 2"."""
        text = f"{self.title} ({self.year})" if self.year else self.title
        if self.seasons:
            text += f", {listed(self.seasons)}"
        return text + (" in 4K" if self.is_4k else "")


def _columns() -> list[Any]:
    r, m, u = requests_t.c, media_t.c, users_t.c
    return [
        r.id,
        r.status,
        r.type.label("media_type"),
        r.is_4k,
        r.reason,
        r.details,
        r.attempts,
        r.created_at,
        r.updated_at,
        r.user_id,
        u.username,
        u.email,
        r.media_id,
        m.title,
        m.tmdb_id,
        m.tvdb_id,
        m.imdb_id,
        m.metadata.label("metadata"),
    ]


def _from() -> Any:
    return requests_t.join(media_t, media_t.c.id == requests_t.c.media_id).join(
        users_t, users_t.c.id == requests_t.c.user_id
    )


# The statements of a request's creation, built once: building one costs more than running it.
_BY_ID = select(*_columns()).select_from(_from()).where(requests_t.c.id == bindparam("id"))
_STANDING_FOR = (
    select(*_columns())
    .select_from(_from())
    .where(
        requests_t.c.media_id == bindparam("media_id"),
        requests_t.c.is_4k == bindparam("is_4k"),
        requests_t.c.status.in_(STANDING),
    )
    .order_by(requests_t.c.created_at)
)
_LIMITS_OF = select(users_t.c.role, users_t.c.quotas).where(users_t.c.id == bindparam("id"))


async def _seasons_of(
    conn: AsyncConnection, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[int]]:
    found: dict[uuid.UUID, list[int]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = await conn.execute(
        select(seasons_t.c.request_id, seasons_t.c.season)
        .where(seasons_t.c.request_id.in_(ids))
        .order_by(seasons_t.c.season)
    )
    for request_id, season in rows:
        found[request_id].append(season)
    return found


def _series(*rows: Any) -> list[uuid.UUID]:
    """The ids of the series requests among ``rows``: only those have seasons to read."""
    return [row.id for row in rows if row.media_type == "tv"]


def _records(rows: Sequence[Any], seasons: Mapping[uuid.UUID, list[int]]) -> list[RequestRecord]:
    return [
        RequestRecord(
            **{**row._asdict(), "details": row.details or {}, "metadata": row.metadata or {}},
            seasons=tuple(seasons.get(row.id, ())),
        )
        for row in rows
    ]


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC).
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def get(engine: AsyncEngine, request_id: uuid.UUID) -> RequestRecord:
    async with engine.connect() as conn:
        row = (await conn.execute(_BY_ID, {"id": request_id})).first()
        if row is None:
            raise NotFound(request_id)
        return _records([row], await _seasons_of(conn, _series(row)))[0]


async def get_many(engine: AsyncEngine, ids: Sequence[uuid.UUID]) -> list[RequestRecord]:
    if not ids:
        return []
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*_columns()).select_from(_from()).where(requests_t.c.id.in_(ids))
            )
        ).all()
        return _records(rows, await _seasons_of(conn, _series(*rows)))


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    at: datetime
    by: str | None
    comment: str | None


async def history(engine: AsyncEngine, request_id: uuid.UUID) -> list[HistoryEntry]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                approvals_t.c.status,
                approvals_t.c.approved_at,
                users_t.c.username,
                approvals_t.c.comments,
            )
            .select_from(approvals_t.outerjoin(users_t, users_t.c.id == approvals_t.c.approved_by))
            .where(approvals_t.c.request_id == request_id)
            .order_by(approvals_t.c.approved_at, approvals_t.c.id)
        )
        return [HistoryEntry(s, _aware(at), by, comment) for s, at, by, comment in rows]


async def user_id_of(engine: AsyncEngine, given: str) -> uuid.UUID | None:
    """The id of the user ``given`` names: by id, or by user name."""
    try:
        wanted = users_t.c.id == uuid.UUID(given)
    except ValueError:
        wanted = users_t.c.username == given
    async with engine.connect() as conn:
        found: uuid.UUID | None = (await conn.execute(select(users_t.c.id).where(wanted))).scalar()
        return found


SortKey = Literal["created", "-created", "updated", "-updated", "title", "-title", "status"]
SORTS: dict[str, Any] = {
    "created": requests_t.c.created_at,
    "updated": requests_t.c.updated_at,
    "title": media_t.c.title,
    "status": requests_t.c.status,
}


@dataclass(frozen=True)
class RequestFilter:
    """Which requests a list shows, in which order, and which page of them."""

    user_id: uuid.UUID | None = None
    statuses: tuple[str, ...] = ()
    media_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: str = "-created"
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True)
class RequestPage:
    items: list[RequestRecord]
    total: int
    counts: dict[str, int] = field(default_factory=dict)


async def list_requests(engine: AsyncEngine, wanted: RequestFilter) -> RequestPage:
    r = requests_t.c
    common = []
    if wanted.user_id is not None:
        common.append(r.user_id == wanted.user_id)
    if wanted.media_type:
        common.append(r.type == wanted.media_type)
    if wanted.since is not None:
        common.append(r.created_at >= wanted.since)
    if wanted.until is not None:
        common.append(r.created_at < wanted.until)
    conditions = [*common, r.status.in_(wanted.statuses)] if wanted.statuses else common
    descending = wanted.sort.startswith("-")
    key = SORTS[wanted.sort.lstrip("-")]
    order = [key.desc() if descending else key.asc(), r.id.desc() if descending else r.id.asc()]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*_columns())
                .select_from(_from())
                .where(*conditions)
                .order_by(*order)
                .limit(wanted.per_page)
                .offset((wanted.page - 1) * wanted.per_page)
            )
        ).all()
        counted = await conn.execute(
            select(r.status, func.count()).where(*common).group_by(r.status)
        )
        counts = {status: 0 for status in STATUSES} | {s: n for s, n in counted}
        total = (
            sum(counts[s] for s in wanted.statuses if s in counts)
            if wanted.statuses
            else sum(counts.values())
        )
        items = _records(rows, await _seasons_of(conn, _series(*rows)))
    return RequestPage(items, total, counts)


# --- availability ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """What the media servers hold of one film or series, all servers together."""

    available: bool = False
    # Season number → (episodes present, episodes the catalogue lists).
    seasons: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    # The names of the servers that hold it ("Home Server").
    servers: tuple[str, ...] = ()
    # What pages call the servers that hold it, and every server that answered, as the
    # plugins that answered say it ("Plex"; a server's name when its plugin names no service).
    services: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()

    def held_by(self) -> str:
        """The servers that hold it, by name: "Ready to watch in Home Server"."""
        return _names(self.servers) or "a media server"

    def held_in(self) -> str:
        """The services that hold it: "Available in Plex"."""
        return _names(self.services) or "a media server"

    def looked_in(self) -> str | None:
        """The services asked: "Not in Plex yet"; ``None`` when no media server answered."""
        return _names(self.checked) or None

    def complete_seasons(self) -> set[int]:
        return {
            n for n, (present, listed_) in self.seasons.items() if present and present >= listed_
        }

    def partial_seasons(self) -> set[int]:
        return {n for n, (present, _) in self.seasons.items() if present} - self.complete_seasons()


def _names(names: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(n for n in names if n))


def episode_counts(metadata: Mapping[str, Any]) -> dict[int, int]:
    counts = {}
    for season in metadata.get("seasons") or ():
        try:
            counts[int(season["number"])] = int(season.get("episode_count") or 0)
        except (KeyError, TypeError, ValueError):
            continue
    return counts


async def save_availability(
    engine: AsyncEngine, media_id: uuid.UUID, answers: Sequence[Availability]
) -> None:
    """Keep what each server said of one media item (replacing its earlier answer)."""
    await save_availabilities(engine, {media_id: answers})


# Ids per ``IN (...)`` list: well under SQLite's limit of bound parameters.
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _kept(answer: Availability) -> tuple[Any, ...]:
    """What is stored of one server's answer, but for when it was checked."""
    seasons = tuple(sorted((n, s.present, s.known) for n, s in answer.seasons.items()))
    return (
        answer.server_name,
        answer.service,
        answer.source,
        answer.available,
        answer.key,
        seasons,
    )


async def save_availabilities(
    engine: AsyncEngine, found: Mapping[uuid.UUID, Sequence[Availability]]
) -> int:
    """Keep what each server said of each media item (by id), replacing its earlier answer.

    What is stored already is read for all of them at once, and only the answers that differ
    are written (``checked_at`` is the check that found the stored answer): a round of checks
    in which nothing changed writes nothing. Returns how many answers were written.
    """
    found = {media_id: answers for media_id, answers in found.items() if answers}
    if not found:
        return 0
    # Read apart from the write: a transaction that reads first may not write afterwards if
    # another wrote meanwhile (SQLite); writing the same answer twice does no harm.
    async with engine.connect() as conn:
        stored = await _stored_availability(conn, list(found))
    changed = _changed_availability(found, stored)
    if changed:
        async with writing(engine) as conn:
            await _write_availability(conn, changed)
    return len(changed)


async def keep_availability(
    conn: AsyncConnection, found: Mapping[uuid.UUID, Sequence[Availability]], *, new: bool = False
) -> int:
    """:func:`save_availabilities` within the (writing) transaction of ``conn``; ``new``: the
    media items were made in this transaction, so nothing is stored of them to read."""
    found = {media_id: answers for media_id, answers in found.items() if answers}
    if not found:
        return 0
    stored = {} if new else await _stored_availability(conn, list(found))
    changed = _changed_availability(found, stored)
    await _write_availability(conn, changed, read_here=True)
    return len(changed)


Stored = dict[tuple[uuid.UUID, str], list[Any]]


async def _stored_availability(conn: AsyncConnection, media_ids: Sequence[uuid.UUID]) -> Stored:
    a, s = availability_t.c, season_availability_t.c
    stored: Stored = {}
    for chunk in _chunks(media_ids):
        rows = await conn.execute(
            select(
                a.media_id, a.server_id, a.server_name, a.service, a.source, a.available, a.key
            ).where(a.media_id.in_(chunk))
        )
        for media_id, server_id, name, service, source, available, key in rows:
            stored[(media_id, server_id)] = [name, service, source, bool(available), key, []]
        season_rows = await conn.execute(
            select(s.media_id, s.server_id, s.season, s.present, s.known)
            .where(s.media_id.in_(chunk))
            .order_by(s.media_id, s.server_id, s.season)
        )
        for media_id, server_id, season, present, known in season_rows:
            entry = stored.get((media_id, server_id))
            if entry is not None:
                entry[5].append((season, present, known))
    return stored


def _changed_availability(
    found: Mapping[uuid.UUID, Sequence[Availability]], stored: Stored
) -> list[tuple[uuid.UUID, Availability, bool]]:
    """The answers that differ from what is stored: (media id, answer, whether any is)."""
    changed = []
    for media_id, answers in found.items():
        for answer in answers:
            kept = stored.get((media_id, answer.server_id))
            if kept is None or (*kept[:5], tuple(kept[5])) != _kept(answer):
                changed.append((media_id, answer, kept is not None))
    return changed


async def _write_availability(
    conn: AsyncConnection,
    changed: Sequence[tuple[uuid.UUID, Availability, bool]],
    *,
    read_here: bool = False,
) -> None:
    """Replace the ``changed`` answers; ``read_here``: what is stored was read in this
    (writing) transaction, so what it did not find needs no deleting. A few statements for
    all of them (per server: a delete of each table; then one insert of each), so that a
    round that finds many changes holds the database briefly."""
    a, s = availability_t.c, season_availability_t.c
    now = utcnow()
    # One answer per media item and server: the last one given.
    changed = list({(m, answer.server_id): (m, answer, was) for m, answer, was in changed}.values())
    # Otherwise whatever is there now: another process may have written it since.
    replaced: dict[str, list[uuid.UUID]] = {}
    for media_id, answer, was_stored in changed:
        if was_stored or not read_here:
            replaced.setdefault(answer.server_id, []).append(media_id)
    for server_id, media_ids in replaced.items():
        for chunk in _chunks(media_ids):
            await conn.execute(
                delete(availability_t).where(a.server_id == server_id, a.media_id.in_(chunk))
            )
            await conn.execute(
                delete(season_availability_t).where(s.server_id == server_id, s.media_id.in_(chunk))
            )
    if not changed:
        return
    await conn.execute(
        insert(availability_t),
        [
            {
                "media_id": media_id,
                "server_id": answer.server_id,
                "server_name": answer.server_name,
                "service": answer.service,
                "source": answer.source,
                "available": answer.available,
                "key": answer.key,
                "checked_at": answer.checked_at or now,
            }
            for media_id, answer, _ in changed
        ],
    )
    seasons = [
        {
            "media_id": media_id,
            "server_id": answer.server_id,
            "season": number,
            "present": season.present,
            "known": season.known,
            "episodes": None,
        }
        for media_id, answer, _ in changed
        for number, season in answer.seasons.items()
    ]
    if seasons:
        await conn.execute(insert(season_availability_t), seasons)


def holding_from(answers: Sequence[Availability], metadata: Mapping[str, Any]) -> Holding:
    """What ``answers`` (one per server) say together, seasons measured against the catalogue."""
    counts = episode_counts(metadata)
    seasons: dict[int, int] = {}
    for answer in answers:
        for number, season in answer.seasons.items():
            seasons[number] = max(seasons.get(number, 0), season.present)
    return Holding(
        available=any(a.available for a in answers),
        seasons={n: (present, counts.get(n, 0)) for n, present in seasons.items()},
        servers=tuple(a.server_name for a in answers if a.available),
        services=tuple(a.shown_as for a in answers if a.available),
        checked=tuple(a.shown_as for a in answers),
    )


async def stored_holdings(
    engine: AsyncEngine, media: Mapping[uuid.UUID, Mapping[str, Any]]
) -> dict[uuid.UUID, Holding]:
    """The last known holding of each media item (by id, with its metadata)."""
    if not media:
        return {}
    ids = list(media)
    async with engine.connect() as conn:
        answered = await conn.execute(
            select(
                availability_t.c.media_id,
                availability_t.c.server_name,
                availability_t.c.service,
                availability_t.c.available,
            ).where(availability_t.c.media_id.in_(ids))
        )
        servers: dict[uuid.UUID, list[str]] = {}
        services: dict[uuid.UUID, list[str]] = {}
        checked: dict[uuid.UUID, list[str]] = {}
        for media_id, name, service, available in answered:
            # An answer stored before services were kept names its server.
            checked.setdefault(media_id, []).append(service or name)
            if available:
                servers.setdefault(media_id, []).append(name)
                services.setdefault(media_id, []).append(service or name)
        rows = await conn.execute(
            select(
                season_availability_t.c.media_id,
                season_availability_t.c.season,
                func.max(season_availability_t.c.present),
            )
            .where(season_availability_t.c.media_id.in_(ids))
            .group_by(season_availability_t.c.media_id, season_availability_t.c.season)
        )
        present: dict[uuid.UUID, dict[int, int]] = {}
        for media_id, season, count in rows:
            present.setdefault(media_id, {})[season] = count
    holdings = {}
    for media_id, metadata in media.items():
        counts = episode_counts(metadata)
        holdings[media_id] = Holding(
            available=media_id in servers,
            seasons={n: (p, counts.get(n, 0)) for n, p in present.get(media_id, {}).items()},
            servers=tuple(servers.get(media_id, ())),
            services=tuple(services.get(media_id, ())),
            checked=tuple(checked.get(media_id, ())),
        )
    return holdings


# --- media ----------------------------------------------------------------------------------


def media_metadata(details: MediaDetails) -> dict[str, Any]:
    return {
        "year": details.year,
        "overview": details.overview,
        "poster_url": details.poster_url,
        "backdrop_url": details.backdrop_url,
        "genres": list(details.genres),
        "is_anime": details.is_anime,
        "seasons": [
            {
                "number": s.number,
                "name": s.name,
                "episode_count": s.episode_count,
                "air_date": s.air_date,
            }
            for s in details.seasons
        ],
    }


def _int_id(ids: Mapping[str, str], scheme: str) -> int | None:
    value = ids.get(scheme)
    return int(value) if value and str(value).isdigit() else None


# What a known media item takes from new details (the rest it keeps).
_UPDATED_ON_CONFLICT = ("title", "tvdb_id", "imdb_id", "metadata", "updated_at")
_UPSERTS: dict[str, Any] = {}


def _upsert_for(dialect: str) -> Any:
    """:func:`upsert_media`'s statement on ``dialect`` (PostgreSQL's or SQLite's own upsert)."""
    upsert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        upsert = pg_insert(media_t)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        upsert = sqlite_insert(media_t)
    _UPSERTS[dialect] = statement = upsert.on_conflict_do_update(
        index_elements=[media_t.c.type, media_t.c.tmdb_id],
        set_={name: upsert.excluded[name] for name in _UPDATED_ON_CONFLICT},
    ).returning(media_t.c.id, media_t.c.created_at)
    return statement


async def upsert_media(
    conn: AsyncConnection, details: MediaDetails, tmdb_id: int
) -> tuple[uuid.UUID, bool]:
    """The id of the media item for ``details``, made now if MediaNest did not know it and
    brought up to date with ``details`` otherwise, and whether it was made now: one statement.
    As the transaction's first write it also locks the row (SQLite: the database) until the
    transaction ends, so that requests for the same media made at the same moment are checked
    one after the other."""
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "type": details.media_type,
        "tmdb_id": tmdb_id,
        "title": details.title[:500],
        "tvdb_id": _int_id(details.ids, "tvdb"),
        "imdb_id": details.ids.get("imdb") or None,
        # The column's name (``metadata`` is taken on the ORM class).
        "metadata": media_metadata(details),
        "created_at": now,
        "updated_at": now,
    }
    statement = _UPSERTS.get(conn.dialect.name)
    if statement is None:
        statement = _upsert_for(conn.dialect.name)
    media_id, created_at = (await conn.execute(statement, values)).one()
    # An existing item keeps its own creation time.
    return media_id, _aware(created_at) == now


async def media_by_tmdb(
    engine: AsyncEngine, keys: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], tuple[uuid.UUID, dict[str, Any]]]:
    """Known media items by (type, TMDB id) → (id, metadata)."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(media_t.c.id, media_t.c.type, media_t.c.tmdb_id, media_t.c.metadata).where(
                or_(*(and_(media_t.c.type == t, media_t.c.tmdb_id == i) for t, i in wanted))
            )
        )
        return {(t, i): (mid, meta or {}) for mid, t, i, meta in rows}


async def standing_for_media(
    engine: AsyncEngine, media_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RequestRecord]]:
    """Standing and available requests of each media item, newest first."""
    if not media_ids:
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*_columns())
                .select_from(_from())
                .where(
                    requests_t.c.media_id.in_(media_ids),
                    requests_t.c.status.in_(STANDING | {"available"}),
                )
                .order_by(requests_t.c.created_at.desc())
            )
        ).all()
        records = _records(rows, await _seasons_of(conn, _series(*rows)))
    found: dict[uuid.UUID, list[RequestRecord]] = {}
    for record in records:
        found.setdefault(record.media_id, []).append(record)
    return found


# --- quotas ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` (``None``: no limit) in any ``days`` days, of which ``used`` are."""

    limit: int | None
    days: int
    used: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


QUOTA_NAMES = {"movies": "films", "seasons": "seasons"}


def _limits(
    user_role: str, stored: Mapping[str, Any], settings: Settings
) -> dict[str, tuple[int | None, int]]:
    defaults = {
        "movies": (settings.quota_movies, settings.quota_movies_days),
        "seasons": (settings.quota_seasons, settings.quota_seasons_days),
    }
    limits: dict[str, tuple[int | None, int]] = {}
    for name, (limit, days) in defaults.items():
        own = stored.get(name)
        if isinstance(own, Mapping) and isinstance(own.get("limit"), int):
            limits[name] = (own["limit"], int(own.get("days") or days))
        elif user_role == "admin":
            limits[name] = (None, days)
        else:
            limits[name] = (limit, days)
    return limits


async def _used(
    conn: AsyncConnection, user_id: uuid.UUID, name: str, days: int, now: datetime
) -> int:
    mine = and_(
        requests_t.c.user_id == user_id,
        requests_t.c.created_at >= now - timedelta(days=days),
        requests_t.c.status != "declined",
    )
    if name == "movies":
        query = (
            select(func.count()).select_from(requests_t).where(mine, requests_t.c.type == "movie")
        )
    else:
        query = (
            select(func.count())
            .select_from(seasons_t.join(requests_t, requests_t.c.id == seasons_t.c.request_id))
            .where(mine, requests_t.c.type == "tv")
        )
    return int(await conn.scalar(query) or 0)


async def _user_limits(
    conn: AsyncConnection, user_id: uuid.UUID, settings: Settings
) -> dict[str, tuple[int | None, int]]:
    user = (await conn.execute(_LIMITS_OF, {"id": user_id})).one()
    return _limits(user.role, user.quotas or {}, settings)


async def quotas(conn: AsyncConnection, user_id: uuid.UUID, settings: Settings) -> dict[str, Quota]:
    """The user's request quotas and how much of each they have used."""
    now = utcnow()
    return {
        name: Quota(limit, days, await _used(conn, user_id, name, days, now))
        for name, (limit, days) in (await _user_limits(conn, user_id, settings)).items()
    }


async def quota_for(
    conn: AsyncConnection, user_id: uuid.UUID, settings: Settings, name: str
) -> Quota | None:
    """The user's quota ``name`` ("movies" or "seasons"); ``None`` when it has no limit (and
    so nothing to count)."""
    limit, days = (await _user_limits(conn, user_id, settings))[name]
    if limit is None:
        return None
    return Quota(limit, days, await _used(conn, user_id, name, days, utcnow()))


# --- making a request -----------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """The request a user's ask became: new or extended, and the seasons it now adds."""

    request_id: uuid.UUID
    extended: bool
    added_seasons: tuple[int, ...]
    status: str
    left_out: str = ""
    # The request as it stood just after (None if it was gone by then).
    record: RequestRecord | None = None


def _who(record: RequestRecord, user: CurrentUser) -> str:
    return "you" if record.user_id == user.id else record.username


async def create(
    engine: AsyncEngine,
    settings: Settings,
    user: CurrentUser,
    details: MediaDetails,
    tmdb_id: int,
    seasons: Sequence[int],
    is_4k: bool,
    holding: Holding,
    answers: Sequence[Availability] = (),
) -> Created:
    """Record ``user``'s request for ``details`` (and, for a series, ``seasons``), and what the
    media servers said of it (``answers``, of which ``holding`` is the sum).

    Refused (with a message saying why) when it is already available, already requested, over
    the user's quota, or asks for seasons the series does not have. A series request for
    seasons beyond the user's own pending request for it extends that request. One
    transaction, whose first statement locks the media item (see :func:`upsert_media`).
    """
    kind = KIND[details.media_type]
    auto = user.has(Permission.AUTO_APPROVE)
    movie = details.media_type == "movie"
    if movie and holding.available and not is_4k:
        raise ApiError(409, f"{details.title} is already available in {holding.held_by()}.")
    async with writing(engine) as conn:
        media_id, new_media = await upsert_media(conn, details, tmdb_id)
        standing = _records(
            (await conn.execute(_STANDING_FOR, {"media_id": media_id, "is_4k": is_4k})).all(), {}
        )
        if movie:
            if standing:
                first = standing[0]
                raise ApiError(
                    409,
                    f"{details.title} has already been requested by {_who(first, user)} "
                    f"({STATUS_WORDS[first.status]}).",
                )
            wanted: set[int] = set()
            left_out = ""
            seasons_by_request: dict[uuid.UUID, list[int]] = {}
        else:
            seasons_by_request = await _seasons_of(conn, [r.id for r in standing])
            wanted = set(seasons)
            have = holding.complete_seasons() if not is_4k else set()
            covered: dict[int, RequestRecord] = {}
            for record in standing:
                for season in seasons_by_request.get(record.id, ()):
                    covered.setdefault(season, record)
            new = wanted - have - set(covered)
            if not new:
                reasons = []
                if wanted & have:
                    reasons.append(f"{listed(wanted & have)} already available")
                for record in {covered[s].id: covered[s] for s in wanted if s in covered}.values():
                    mine = sorted(set(seasons_by_request[record.id]) & wanted)
                    reasons.append(
                        f"{listed(mine)} already requested by {_who(record, user)} "
                        f"({STATUS_WORDS[record.status]})"
                    )
                raise ApiError(409, f"{details.title}: " + "; ".join(reasons) + ".")
            skipped = wanted - new
            left_out = (
                f"{listed(skipped)} left out: already available or requested." if skipped else ""
            )
            wanted = new
        # Quota: what this request adds (counted only when there is a limit).
        name = "movies" if movie else "seasons"
        quota = await quota_for(conn, user.id, settings, name)
        cost = 1 if movie else len(wanted)
        if quota is not None and quota.remaining is not None and cost > quota.remaining:
            raise ApiError(
                403,
                f"This would go over your quota of {quota.limit} {QUOTA_NAMES[name]} in "
                f"{quota.days} days: you have {quota.remaining} left"
                + ("" if movie else f" and asked for {cost}")
                + ".",
            )
        now = utcnow()
        own_pending = next(
            (r for r in standing if r.user_id == user.id and r.status == "pending"), None
        )
        if not movie and own_pending is not None:
            request_id, status, extended = own_pending.id, "pending", True
            await conn.execute(
                insert(seasons_t),
                [{"request_id": request_id, "season": s} for s in sorted(wanted)],
            )
            await conn.execute(
                update(requests_t).where(requests_t.c.id == request_id).values(updated_at=now)
            )
            history: list[tuple[uuid.UUID | None, str, str]] = [
                (user.id, "pending", f"Added {listed(wanted)}.")
            ]
            all_seasons = set(seasons_by_request.get(request_id, ())) | wanted
        else:
            request_id, extended = uuid.uuid4(), False
            status = "approved" if auto else "pending"
            await conn.execute(
                insert(requests_t),
                {
                    "id": request_id,
                    "user_id": user.id,
                    "media_id": media_id,
                    "type": details.media_type,
                    "status": status,
                    "is_4k": is_4k,
                    "details": {"is_anime": details.is_anime},
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if wanted:
                await conn.execute(
                    insert(seasons_t),
                    [{"request_id": request_id, "season": s} for s in sorted(wanted)],
                )
            history = [(user.id, "pending", f"Requested the {kind}.")]
            if auto:
                history.append((None, "approved", "Approved automatically."))
            all_seasons = wanted
        await _history_rows(conn, request_id, history)
        await keep_availability(conn, {media_id: answers}, new=new_media)
    # Read once the writer's turn is over: other writers wait for none of it.
    async with engine.connect() as conn:
        row = (await conn.execute(_BY_ID, {"id": request_id})).first()
    made = _records([row], {request_id: sorted(all_seasons)})[0] if row is not None else None
    return Created(request_id, extended, tuple(sorted(wanted)), status, left_out, made)


async def _history_rows(
    conn: AsyncConnection,
    request_id: uuid.UUID,
    entries: Sequence[tuple[uuid.UUID | None, str, str]],
) -> None:
    """Rows of a request's history (actor, status, comment), in this order, in one statement."""
    rows, at = [], utcnow()
    for actor, status, comment in entries:
        rows.append(
            {
                "id": uuid.uuid4(),
                "request_id": request_id,
                "approved_by": actor,
                "status": status,
                "comments": comment,
                "approved_at": at,
            }
        )
        at += timedelta(microseconds=1)  # the history is read in order of time
    await conn.execute(insert(approvals_t), rows)


async def delete_request(
    engine: AsyncEngine, user: CurrentUser, request_id: uuid.UUID
) -> RequestRecord:
    """Delete a request: one's own while it is pending, or any with "manage requests"."""
    record = await get(engine, request_id)
    manager = user.has(Permission.MANAGE_REQUESTS)
    if not manager:
        if record.user_id != user.id:
            raise NotFound(request_id)
        if record.status != "pending":
            raise ApiError(
                409,
                f"Your request is {STATUS_WORDS[record.status]}: only a pending request can be "
                "withdrawn. Ask an admin to remove it.",
            )
    async with writing(engine) as conn:
        condition = [requests_t.c.id == request_id]
        if not manager:
            condition.append(requests_t.c.status == "pending")
        gone = await conn.execute(delete(requests_t).where(*condition))
        if gone.rowcount != 1:
            raise ApiError(409, "The request changed meanwhile; reload and try again.")
    return record


# --- the fulfilment queue -------------------------------------------------------------------


async def claim(engine: AsyncEngine, lease: float, limit: int = 10) -> list[uuid.UUID]:
    """Take approved requests nobody holds (or whose holder's lease ran out) for fulfilment,
    the longest waiting first: one statement, which takes each only if it is still free."""
    now = utcnow()
    r = requests_t.c
    free = or_(r.claimed_until.is_(None), r.claimed_until < now)
    due = select(r.id).where(r.status == "approved", free).order_by(r.updated_at).limit(limit)
    if engine.dialect.name == "postgresql":
        # Another process's claim under way: leave its rows to it rather than wait.
        due = due.with_for_update(skip_locked=True)
    async with writing(engine) as conn:
        taken = await conn.execute(
            update(requests_t)
            .where(r.id.in_(due.scalar_subquery()), r.status == "approved", free)
            .values(claimed_until=now + timedelta(seconds=lease), attempts=r.attempts + 1)
            .returning(r.id, r.updated_at)
        )
        return [request_id for request_id, _ in sorted(taken, key=lambda row: row[1])]


async def tracked_media(
    engine: AsyncEngine, ids: Mapping[str, str] | None = None
) -> list[uuid.UUID]:
    """The media items with requests whose progress and availability are followed, oldest
    request first; only those with one of ``ids``, when given."""
    r = requests_t
    conditions: list[Any] = [r.c.status.in_(TRACKED)]
    if ids:
        matches = []
        for scheme, column in (("tmdb", media_t.c.tmdb_id), ("tvdb", media_t.c.tvdb_id)):
            value = _int_id(ids, scheme)
            if value is not None:
                matches.append(column == value)
        if ids.get("imdb"):
            matches.append(media_t.c.imdb_id == ids["imdb"])
        if not matches:
            return []
        conditions.append(r.c.media_id.in_(select(media_t.c.id).where(or_(*matches))))
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(r.c.media_id)
            .where(*conditions)
            .group_by(r.c.media_id)
            .order_by(func.min(r.c.created_at))
        )
        return [media for (media,) in rows]


async def tracked(engine: AsyncEngine, media_ids: Sequence[uuid.UUID]) -> list[RequestRecord]:
    """The followed requests of the media items ``media_ids``, oldest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*_columns())
                .select_from(_from())
                .where(requests_t.c.status.in_(TRACKED), requests_t.c.media_id.in_(media_ids))
                .order_by(requests_t.c.created_at)
            )
        ).all()
        return _records(rows, await _seasons_of(conn, _series(*rows)))


async def set_details(
    engine: AsyncEngine, request_id: uuid.UUID, changes: Mapping[str, Any]
) -> None:
    """Merge ``changes`` into a request's details (progress, say), whatever its status."""
    async with writing(engine) as conn:
        current = await conn.scalar(
            select(requests_t.c.details).where(requests_t.c.id == request_id)
        )
        if current is None:
            return
        await conn.execute(
            update(requests_t)
            .where(requests_t.c.id == request_id)
            .values(details={**current, **changes})
        )
