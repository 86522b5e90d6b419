"""Search, request, approve and follow requests: pages and the JSON API.

Everyone searches on ``/search``, opens a film or series on ``/media/{type}/{tmdb_id}`` to request
it (a series season by season), and follows their requests on ``/requests``. Holders of "manage
requests" see everybody's there (with filters), approve or decline them one at a time or many
at once. The pages work without script; the page script only makes them live.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time
from typing import Annotated, Literal
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from ..core import hookspecs
from ..core.api import ApiModel, QueryModel, validation_details
from ..core.auth import CurrentUser, Permission
from ..core.errors import ApiError
from ..core.extensions import MediaDetails, Route, SearchResult
from ..core.keys import ENGINE, SETTINGS
from ..core.middleware import require_user
from . import workflow as requests
from .desk import RequestDesk
from .keys import NOTIFIER, REQUESTS
from .workflow import Holding, RequestRecord

MANAGE = Permission.MANAGE_REQUESTS.value
PER_PAGE = 20


def _desk(request: web.Request) -> RequestDesk:
    return request.app[REQUESTS]


# --- models of the JSON API -----------------------------------------------------------------


TmdbId = Annotated[
    int, Field(gt=0, lt=100_000_000, description="The film's or series' id in the catalogue.")
]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class RequestIn(ApiModel):
    """A request for a film, or for seasons of a series."""

    media_type: Literal["movie", "tv"]
    tmdb_id: TmdbId
    seasons: list[Annotated[int, Field(ge=0, le=1000)]] = Field(
        default_factory=list, max_length=200, description="Series only: the seasons wanted."
    )
    is_4k: bool = Field(default=False, description="Ask for the 4K copy (the 4K instance).")


class DecisionIn(ApiModel):
    comment: Comment | None = Field(
        default=None, description="Shown to the requester; the reason when declining."
    )


class BulkDecisionIn(DecisionIn):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class Person(BaseModel):
    id: str
    username: str


class ProgressItem(BaseModel):
    title: str
    percent: float
    state: str
    eta: datetime | None
    instance: str


class ProgressOut(BaseModel):
    """How far the downloads have got, all queue items together."""

    percent: float
    state: str
    eta: datetime | None
    items: list[ProgressItem]


class HistoryOut(BaseModel):
    status: str
    at: datetime
    by: str | None
    comment: str | None


class RequestOut(BaseModel):
    id: str
    status: requests.Status
    status_text: str
    media_type: Literal["movie", "tv"]
    tmdb_id: int | None
    tvdb_id: int | None
    title: str
    year: int | None
    poster_url: str | None
    seasons: list[int]
    is_4k: bool
    requested_by: Person
    reason: str | None = Field(description="Why it was declined or why fulfilment failed.")
    progress: ProgressOut | None
    created_at: datetime
    updated_at: datetime
    history: list[HistoryOut] | None = Field(
        default=None, description="Every change, oldest first (when one request is read)."
    )


class RequestCreated(BaseModel):
    request: RequestOut
    extended: bool = Field(description="Whether the seasons were added to your pending request.")
    message: str


class RequestListOut(BaseModel):
    items: list[RequestOut]
    total: int
    page: int
    per_page: int
    pages: int
    counts: dict[str, int] = Field(description="Requests by status (under the other filters).")


class BulkOutcome(BaseModel):
    id: str
    ok: bool
    status: str | None = None
    error: str | None = None


class BulkOut(BaseModel):
    results: list[BulkOutcome]


class Deleted(BaseModel):
    deleted: str


class QuotaOut(BaseModel):
    limit: int | None = Field(description="None: no limit.")
    days: int
    used: int
    remaining: int | None


class QuotasOut(BaseModel):
    movies: QuotaOut
    seasons: QuotaOut


Sort = Literal["created", "-created", "updated", "-updated", "title", "-title", "status"]
STATUS_LIST = ",".join(requests.STATUSES)


class RequestQuery(QueryModel):
    status: str | None = Field(
        default=None, description=f"One or more of {STATUS_LIST}, separated by commas."
    )
    type: Literal["movie", "tv"] | None = None
    user: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = Field(
        default=None, description="A user's id or name (managers only)."
    )
    since: date | None = Field(default=None, description="Made on or after this day.")
    until: date | None = Field(default=None, description="Made on or before this day.")
    sort: Sort = "-created"
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=PER_PAGE, ge=1, le=100)
    scope: Literal["mine", "all"] = Field(
        default="mine", description='"all" lists everybody\'s (managers only).'
    )

    def statuses(self) -> tuple[str, ...]:
        if not self.status:
            return ()
        given = tuple(s.strip() for s in self.status.split(",") if s.strip())
        unknown = [s for s in given if s not in requests.STATUSES]
        if unknown:
            raise ApiError(422, f"Unknown status {', '.join(unknown)}: use {STATUS_LIST}.")
        return given


class SearchQuery(QueryModel):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


MediaState = Literal["available", "partially_available", "requested", "requestable"]


class MediaStatus(BaseModel):
    """Where a film or series stands for MediaNest's users."""

    state: MediaState
    text: str
    requested_by: str | None = None
    request_status: str | None = None
    available_seasons: list[int] = []


class SearchItem(BaseModel):
    media_type: Literal["movie", "tv"]
    tmdb_id: int
    title: str
    year: int | None
    overview: str
    poster_url: str | None
    status: MediaStatus


class SearchOut(BaseModel):
    query: str
    results: list[SearchItem]


class SeasonOut(BaseModel):
    number: int
    name: str
    episode_count: int
    air_date: str | None
    state: MediaState
    text: str


class MediaOut(BaseModel):
    media_type: Literal["movie", "tv"]
    tmdb_id: int
    title: str
    year: int | None
    overview: str
    poster_url: str | None
    backdrop_url: str | None
    genres: list[str]
    runtime: int | None
    status: MediaStatus
    seasons: list[SeasonOut]
    requests: list[RequestOut]


class StatusQuery(QueryModel):
    ids: Annotated[str, StringConstraints(max_length=4000)] = Field(
        description='Comma-separated "movie:603,tv:1396".'
    )


class StatusesOut(BaseModel):
    statuses: dict[str, MediaStatus] = Field(description='By "type:tmdb_id".')


# --- turning records into answers -----------------------------------------------------------


def request_out(
    record: RequestRecord, history: list[requests.HistoryEntry] | None = None
) -> RequestOut:
    progress = record.details.get("progress")
    return RequestOut(
        id=str(record.id),
        status=record.status,  # type: ignore[arg-type]
        status_text=requests.STATUS_WORDS[record.status],
        media_type=record.media_type,  # type: ignore[arg-type]
        tmdb_id=record.tmdb_id,
        tvdb_id=record.tvdb_id,
        title=record.title,
        year=record.year,
        poster_url=record.poster_url,
        seasons=list(record.seasons),
        is_4k=record.is_4k,
        requested_by=Person(id=str(record.user_id), username=record.username),
        reason=record.reason,
        progress=ProgressOut.model_validate(progress) if progress else None,
        created_at=record.created_at,
        updated_at=record.updated_at,
        history=None
        if history is None
        else [HistoryOut(status=h.status, at=h.at, by=h.by, comment=h.comment) for h in history],
    )


def media_status(
    media_type: str,
    holding: Holding,
    standing: list[RequestRecord],
    user: CurrentUser,
    episode_counts: dict[int, int] | None = None,
) -> MediaStatus:
    """Where a film or series stands; ``episode_counts`` (season → episodes, as the catalogue
    lists them) tells a complete series from a partly held one."""
    episode_counts = episode_counts or {}

    def who(record: RequestRecord) -> str:
        return "you" if record.user_id == user.id else record.username

    complete = sorted(holding.complete_seasons())
    # Where it is, or was looked for, as the plugins that answered name their servers.
    held_in, looked_in = holding.held_in(), holding.looked_in()
    if media_type == "movie" and holding.available:
        return MediaStatus(state="available", text=f"Available in {held_in}")
    if media_type == "tv" and holding.available:
        present = sorted(holding.complete_seasons() | holding.partial_seasons())
        open_ = [r for r in standing if r.status in requests.STANDING]
        listed_seasons = {n for n, count in episode_counts.items() if n > 0 and count > 0}
        if listed_seasons and listed_seasons <= set(complete):
            return MediaStatus(
                state="available", text=f"Available in {held_in}", available_seasons=complete
            )
        if not open_:
            return MediaStatus(
                state="partially_available",
                text=f"In {held_in}: {requests.listed(present)}",
                available_seasons=complete,
            )
    live = [r for r in standing if r.status in requests.STANDING]
    if live:
        first = live[0]
        return MediaStatus(
            state="requested",
            text=f"Requested by {who(first)}: {requests.STATUS_WORDS[first.status]}",
            requested_by=first.username,
            request_status=first.status,
            available_seasons=complete,
        )
    text = f"Not in {looked_in} yet" if looked_in else "Not available yet"
    return MediaStatus(state="requestable", text=text, available_seasons=complete)


async def _statuses(
    request: web.Request,
    keys: list[tuple[str, int]],
    found: dict[tuple[str, int], MediaDetails | SearchResult],
) -> dict[tuple[str, int], MediaStatus]:
    """The status of each (type, TMDB id): Plex holding and standing requests."""
    desk = _desk(request)
    user = require_user(request)
    engine = request.app[ENGINE]
    known = await requests.media_by_tmdb(engine, keys)
    standing = await requests.standing_for_media(engine, [mid for mid, _ in known.values()])

    async def holding_of(key: tuple[str, int]) -> Holding:
        thing = found.get(key)
        ids = dict(thing.ids) if thing is not None else {"tmdb": str(key[1])}
        answers = await desk.availability(key[0], ids)
        metadata = known[key][1] if key in known else {}
        return requests.holding_from(answers, metadata)

    holdings = await asyncio.gather(*(holding_of(k) for k in keys))
    statuses = {}
    for key, holding in zip(keys, holdings, strict=True):
        records = standing.get(known[key][0], []) if key in known else []
        counts = requests.episode_counts(known[key][1]) if key in known else {}
        statuses[key] = media_status(key[0], holding, records, user, counts)
    return statuses


# --- search ---------------------------------------------------------------------------------


async def _search(request: web.Request, q: str) -> SearchOut:
    registry = _desk(request).registry
    answers = await registry.call_each(hookspecs.search_media, query=q)
    results: list[SearchResult] = []
    seen: set[tuple[str, int]] = set()
    for _, found in answers:
        for hit in found or ():
            if not isinstance(hit, SearchResult) or hit.media_type not in ("movie", "tv"):
                continue
            tmdb = str(hit.ids.get("tmdb") or "")
            if not tmdb.isdigit() or (hit.media_type, int(tmdb)) in seen:
                continue  # requests go by TMDB id; a Plex item without one is not requestable
            seen.add((hit.media_type, int(tmdb)))
            results.append(hit)
    keys: list[tuple[str, int]] = [(r.media_type, int(str(r.ids["tmdb"]))) for r in results]
    statuses = await _statuses(request, keys, dict(zip(keys, results, strict=True)))
    return SearchOut(
        query=q,
        results=[
            SearchItem(
                media_type=key[0],  # type: ignore[arg-type]
                tmdb_id=key[1],
                title=hit.title,
                year=hit.year,
                overview=hit.overview,
                poster_url=hit.poster_url,
                status=statuses[key],
            )
            for key, hit in zip(keys, results, strict=True)
        ],
    )


async def search(request: web.Request, query: SearchQuery) -> SearchOut:
    """Films and series matching ``q`` (TMDB, and what Plex holds), each with where it stands."""
    return await _search(request, query.q)


async def search_page(request: web.Request) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:200]
    found = await _search(request, q) if q else None
    return aiohttp_jinja2.render_template("search.html", request, {"q": q, "found": found})


async def media_statuses(request: web.Request, query: StatusQuery) -> StatusesOut:
    """Where each of up to 100 films and series stands (the badges of the discovery pages)."""
    keys: list[tuple[str, int]] = []
    for part in query.ids.split(","):
        kind, _, number = part.strip().partition(":")
        if kind not in ("movie", "tv") or not number.isdigit() or not 0 < int(number) < 10**8:
            raise ApiError(422, f'"{part.strip()}" is not "movie:<id>" or "tv:<id>".')
        keys.append((kind, int(number)))
    keys = list(dict.fromkeys(keys))
    if len(keys) > 100:
        raise ApiError(422, "Ask for at most 100 films and series at once.")
    statuses = await _statuses(request, keys, {})
    return StatusesOut(statuses={f"{k[0]}:{k[1]}": v for k, v in statuses.items()})


# --- one film or series ---------------------------------------------------------------------


def _media_type(request: web.Request) -> str:
    kind = request.match_info["media_type"]
    if kind not in ("movie", "tv"):
        raise ApiError(404, f'"{kind}" is neither "movie" nor "tv".')
    return kind


def _tmdb_id(request: web.Request) -> int:
    given = request.match_info["tmdb_id"]
    if not (given.isascii() and given.isdigit()) or not 0 < int(given) < 10**8:
        raise ApiError(404, f"{given[:20]!r} is not a catalogue id.")
    return int(given)


async def _media(request: web.Request) -> MediaOut:
    desk = _desk(request)
    user = require_user(request)
    media_type, tmdb_id = _media_type(request), _tmdb_id(request)
    details = await desk.lookup(media_type, tmdb_id)
    holding, _ = await desk.holding(details)
    engine = request.app[ENGINE]
    known = await requests.media_by_tmdb(engine, [(media_type, tmdb_id)])
    media_id = known[(media_type, tmdb_id)][0] if known else None
    standing = (
        (await requests.standing_for_media(engine, [media_id])).get(media_id, [])
        if media_id
        else []
    )
    visible = [r for r in standing if r.user_id == user.id or user.has(MANAGE)]
    seasons = []
    for s in details.seasons:
        present, _ = holding.seasons.get(s.number, (0, s.episode_count))
        asked = next(
            (r for r in standing if r.status in requests.STANDING and s.number in r.seasons), None
        )
        if s.number in holding.complete_seasons():
            state, text = "available", "Available"
        elif asked is not None:
            state = "requested"
            text = f"Requested ({requests.STATUS_WORDS[asked.status]})"
        elif present:
            state, text = "partially_available", f"{present} of {s.episode_count} episodes"
        else:
            looked_in = holding.looked_in()
            state, text = "requestable", f"Not in {looked_in}" if looked_in else "Not available"
        seasons.append(
            SeasonOut(
                number=s.number,
                name=s.name,
                episode_count=s.episode_count,
                air_date=s.air_date,
                state=state,  # type: ignore[arg-type]
                text=text,
            )
        )
    return MediaOut(
        media_type=media_type,  # type: ignore[arg-type]
        tmdb_id=tmdb_id,
        title=details.title,
        year=details.year,
        overview=details.overview,
        poster_url=details.poster_url,
        backdrop_url=details.backdrop_url,
        genres=list(details.genres),
        runtime=details.runtime,
        status=media_status(
            media_type,
            holding,
            standing,
            user,
            {s.number: s.episode_count for s in details.seasons},
        ),
        seasons=seasons,
        requests=[request_out(r) for r in visible],
    )


async def get_media(request: web.Request) -> MediaOut:
    """A film or series: details, where it stands, its seasons and the requests for it."""
    return await _media(request)


async def media_page(request: web.Request) -> web.StreamResponse:
    media = await _media(request)
    quotas = await _quotas(request)
    return aiohttp_jinja2.render_template(
        "media.html",
        request,
        {"media": media, "quotas": quotas, "error": request.query.get("error", "")[:300]},
    )


# --- requests -------------------------------------------------------------------------------


async def _quotas(request: web.Request) -> QuotasOut:
    user = require_user(request)
    async with request.app[ENGINE].connect() as conn:
        found = await requests.quotas(conn, user.id, request.app[SETTINGS])
    return QuotasOut(
        **{
            name: QuotaOut(limit=q.limit, days=q.days, used=q.used, remaining=q.remaining)
            for name, q in found.items()
        }
    )


async def my_quotas(request: web.Request) -> QuotasOut:
    """Your request quotas and how much of each you have used."""
    return await _quotas(request)


def _message(created: requests.Created, record: RequestRecord) -> str:
    if created.extended:
        text = f"Added {requests.listed(created.added_seasons)} to your request for {record.title}."
    elif created.status == "approved":
        text = f"{record.label}: requested and approved."
    else:
        text = f"{record.label}: requested; an admin will look at it."
    return f"{text} {created.left_out}".strip()


async def create_request(request: web.Request, body: RequestIn) -> web.StreamResponse:
    """Request a film, or seasons of a series (more seasons extend your pending request)."""
    user = require_user(request)
    created, record = await _desk(request).create(
        user, body.media_type, body.tmdb_id, body.seasons, body.is_4k
    )
    answer = RequestCreated(
        request=request_out(record), extended=created.extended, message=_message(created, record)
    )
    return web.Response(
        status=200 if created.extended else 201,
        body=answer.model_dump_json().encode(),
        content_type="application/json",
    )


def _request_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "There is no such request.") from None


async def _visible_record(request: web.Request) -> RequestRecord:
    user = require_user(request)
    record = await requests.get(request.app[ENGINE], _request_id(request))
    if record.user_id != user.id and not user.has(MANAGE):
        raise requests.NotFound(record.id)
    return record


async def get_request(request: web.Request) -> RequestOut:
    """One request, with its history (your own, or any with "manage requests")."""
    record = await _visible_record(request)
    return request_out(record, await requests.history(request.app[ENGINE], record.id))


async def _filter(request: web.Request, query: RequestQuery) -> requests.RequestFilter:
    user = require_user(request)
    everyone = query.scope == "all"
    if (everyone or query.user) and not user.has(MANAGE):
        raise ApiError(403, "Only people who manage requests may list other people's requests.")
    user_id: uuid.UUID | None = None if everyone else user.id
    if query.user:
        user_id = await requests.user_id_of(request.app[ENGINE], query.user)
        if user_id is None:
            raise ApiError(422, f"There is no user {query.user[:40]!r}.")
    return requests.RequestFilter(
        user_id=user_id,
        statuses=query.statuses(),
        media_type=query.type,
        since=datetime.combine(query.since, time.min).astimezone() if query.since else None,
        until=datetime.combine(query.until, time.max).astimezone() if query.until else None,
        sort=query.sort,
        page=query.page,
        per_page=query.per_page,
    )


# How long a list answer is kept at most. Writes made through MediaNest make it stale at
# once (see `requests.Generation`); this bounds what others do to the database meanwhile.
LIST_TTL = 60.0


async def _list_json(request: web.Request, query: RequestQuery) -> str:
    """The list answer as JSON, cached per generation of the requests, viewer's scope (the
    filter names whose requests a viewer may see) and query."""
    wanted = await _filter(request, query)
    desk = _desk(request)
    key = "requests:list:{}:{}:{}:{}:{}:{}:{}:{}:{}".format(
        await desk.generation.token(),
        wanted.user_id or "*",
        ",".join(wanted.statuses),
        wanted.media_type or "",
        wanted.since.isoformat() if wanted.since else "",
        wanted.until.isoformat() if wanted.until else "",
        wanted.sort,
        wanted.page,
        wanted.per_page,
    )

    async def compute() -> str:
        found = await requests.list_requests(request.app[ENGINE], wanted)
        return RequestListOut(
            items=[request_out(r) for r in found.items],
            total=found.total,
            page=query.page,
            per_page=query.per_page,
            pages=max(1, -(-found.total // query.per_page)),
            counts=found.counts,
        ).model_dump_json()

    return await desk.cache.get_or_compute(key, LIST_TTL, compute)


async def _list(request: web.Request, query: RequestQuery) -> RequestListOut:
    return RequestListOut.model_validate_json(await _list_json(request, query))


async def list_requests(request: web.Request, query: RequestQuery) -> web.StreamResponse:
    """Your requests, or everybody's (``scope=all``), filtered, sorted and a page at a time."""
    return web.Response(
        body=(await _list_json(request, query)).encode(), content_type="application/json"
    )


async def approve_request(request: web.Request, body: DecisionIn) -> RequestOut:
    """Approve a pending request: it goes to Radarr or Sonarr at once."""
    record = await _desk(request).decide(
        require_user(request), _request_id(request), "approve", body.comment
    )
    return request_out(record)


async def decline_request(request: web.Request, body: DecisionIn) -> RequestOut:
    """Decline a pending (or failed) request, with the reason in ``comment``."""
    record = await _desk(request).decide(
        require_user(request), _request_id(request), "decline", body.comment
    )
    return request_out(record)


async def retry_request(request: web.Request, body: DecisionIn) -> RequestOut:
    """Try a failed request's fulfilment again."""
    record = await _desk(request).decide(
        require_user(request), _request_id(request), "retry", body.comment
    )
    return request_out(record)


async def _bulk(request: web.Request, body: BulkDecisionIn, action: str) -> BulkOut:
    desk, user = _desk(request), require_user(request)
    results = []
    for request_id in dict.fromkeys(body.ids):
        try:
            record = await desk.decide(user, request_id, action, body.comment)
        except ApiError as exc:
            results.append(BulkOutcome(id=str(request_id), ok=False, error=exc.message))
        else:
            results.append(BulkOutcome(id=str(request_id), ok=True, status=record.status))
    return BulkOut(results=results)


async def approve_many(request: web.Request, body: BulkDecisionIn) -> BulkOut:
    """Approve several requests; each is answered on its own."""
    return await _bulk(request, body, "approve")


async def decline_many(request: web.Request, body: BulkDecisionIn) -> BulkOut:
    """Decline several requests; each is answered on its own."""
    return await _bulk(request, body, "decline")


async def delete_request(request: web.Request) -> Deleted:
    """Withdraw your pending request, or (managing requests) remove any request."""
    record = await _desk(request).delete(require_user(request), _request_id(request))
    return Deleted(deleted=str(record.id))


# --- pages ----------------------------------------------------------------------------------


async def requests_page(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    try:
        # "done" and "error" carry the outcome of a form back to the page.
        filters = {k: v for k, v in request.query.items() if k not in ("done", "error")}
        query = RequestQuery.model_validate(filters)
        found = await _list(request, query)
    except ValidationError as exc:
        problems = "; ".join(f"{d['field']}: {d['message']}" for d in validation_details(exc))
        raise web.HTTPBadRequest(text=f"Bad filter: {problems}") from None
    base = {k: v for k, v in query.model_dump(exclude={"page"}).items() if v not in (None, "")}

    def page_url(number: int) -> str:
        return "/requests?" + urlencode({**base, "page": number}, doseq=True)

    return aiohttp_jinja2.render_template(
        "requests.html",
        request,
        {
            "query": query,
            "found": found,
            "manager": user.has(MANAGE),
            "statuses": requests.STATUSES,
            "words": requests.STATUS_WORDS,
            "previous_url": page_url(query.page - 1) if query.page > 1 else None,
            "next_url": page_url(query.page + 1) if query.page < found.pages else None,
            "quotas": await _quotas(request),
            "flash": request.query.get("done", "")[:300],
            "error": request.query.get("error", "")[:300],
        },
    )


async def request_page(request: web.Request) -> web.StreamResponse:
    record = await _visible_record(request)
    user = require_user(request)
    out = request_out(record, await requests.history(request.app[ENGINE], record.id))
    return aiohttp_jinja2.render_template(
        "request.html",
        request,
        {
            "r": out,
            "manager": user.has(MANAGE),
            "mine": record.user_id == user.id,
            "flash": request.query.get("done", "")[:300],
            "error": request.query.get("error", "")[:300],
        },
    )


def _form_int(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 0


def _form_int_list(values: list[str]) -> list[int]:
    numbers = []
    for value in values:
        if not value.isdigit():
            raise ApiError(422, f"{value[:20]!r} is not a season number.")
        numbers.append(int(value))
    return numbers


async def request_form(request: web.Request) -> web.StreamResponse:
    """Form post from a film's or series' page."""
    form = await request.post()
    media_type = str(form.get("media_type", ""))
    back = f"/media/{media_type}/{form.get('tmdb_id', '')}"
    try:
        body = RequestIn.model_validate(
            {
                "media_type": media_type,
                "tmdb_id": _form_int(str(form.get("tmdb_id", ""))),
                "seasons": _form_int_list([str(v) for v in form.getall("seasons", [])]),
                "is_4k": form.get("is_4k") == "1",
            }
        )
        created, record = await _desk(request).create(
            require_user(request), body.media_type, body.tmdb_id, body.seasons, body.is_4k
        )
    except ValidationError as exc:
        problems = "; ".join(f"{d['field']}: {d['message']}" for d in validation_details(exc))
        raise web.HTTPSeeOther(f"{back}?" + urlencode({"error": problems})) from None
    except ApiError as exc:
        if media_type not in ("movie", "tv"):
            raise
        raise web.HTTPSeeOther(f"{back}?" + urlencode({"error": exc.message})) from None
    raise web.HTTPSeeOther(
        f"/requests/{record.id}?" + urlencode({"done": _message(created, record)})
    )


async def decide_form(request: web.Request) -> web.StreamResponse:
    """Form post: approve, decline or retry one request, or several from the list."""
    form = await request.post()
    action = str(form.get("action", ""))
    if action not in ("approve", "decline", "retry"):
        raise ApiError(422, 'action must be "approve", "decline" or "retry".')
    comment = str(form.get("comment", "")).strip()[:1000] or None
    raw_ids = [str(v) for v in form.getall("ids", [])]
    back = str(form.get("back", "/requests?scope=all"))
    if not back.startswith("/requests"):
        back = "/requests?scope=all"
    if not raw_ids:
        raise web.HTTPSeeOther(_with(back, error="Tick at least one request."))
    desk, user = _desk(request), require_user(request)
    done, failed = 0, []
    for raw in raw_ids:
        try:
            await desk.decide(user, uuid.UUID(raw), action, comment)
            done += 1
        except ValueError:
            failed.append(f"{raw[:40]!r} is not a request id")
        except ApiError as exc:
            failed.append(exc.message)
    verb = {"approve": "Approved", "decline": "Declined", "retry": "Retried"}[action]
    message = f"{verb} {done} request{'' if done == 1 else 's'}."
    if failed:
        raise web.HTTPSeeOther(_with(back, done=message, error=" ".join(failed)))
    raise web.HTTPSeeOther(_with(back, done=message))


async def withdraw_form(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    record = await _desk(request).delete(user, _request_id(request))
    done = f"Removed the request for {record.label}."
    raise web.HTTPSeeOther("/requests?" + urlencode({"done": done}))


def _with(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


# --- notifications --------------------------------------------------------------------------


class NotificationOut(BaseModel):
    id: int
    kind: str
    subject: str
    message: str
    link: str | None
    created_at: datetime
    read: bool


class NotificationList(BaseModel):
    unread: int
    items: list[NotificationOut]


class NotificationQuery(QueryModel):
    before: int | None = Field(default=None, ge=1, description="Older than this id (paging).")
    limit: int = Field(default=50, ge=1, le=200)


class ReadIn(ApiModel):
    ids: list[int] | None = Field(
        default=None, max_length=500, description="Which to mark read; all when left out."
    )


class ReadOut(BaseModel):
    marked: int
    unread: int


async def _notifications(request: web.Request, query: NotificationQuery) -> NotificationList:
    user = require_user(request)
    notifier = request.app[NOTIFIER]
    found = await notifier.list_for(user.id, query.limit, query.before)
    return NotificationList(
        unread=await notifier.unread(user.id),
        items=[NotificationOut(**n.__dict__) for n in found],
    )


async def list_notifications(request: web.Request, query: NotificationQuery) -> NotificationList:
    """Your notifications, newest first, and how many are unread."""
    return await _notifications(request, query)


async def read_notifications(request: web.Request, body: ReadIn) -> ReadOut:
    """Mark some (or all) of your notifications read."""
    user = require_user(request)
    notifier = request.app[NOTIFIER]
    marked = await notifier.mark_read(user.id, body.ids)
    return ReadOut(marked=marked, unread=await notifier.unread(user.id))


async def notifications_page(request: web.Request) -> web.StreamResponse:
    found = await _notifications(request, NotificationQuery())
    return aiohttp_jinja2.render_template("notifications.html", request, {"found": found})


async def read_notifications_form(request: web.Request) -> web.StreamResponse:
    await request.app[NOTIFIER].mark_read(require_user(request).id, None)
    raise web.HTTPSeeOther("/notifications")


REQUEST_ROUTES = [
    Route("GET", "/search", search_page, include_in_schema=False),
    Route("GET", "/media/{media_type}/{tmdb_id}", media_page, include_in_schema=False),
    Route("GET", "/requests", requests_page, include_in_schema=False),
    Route("POST", "/requests/new", request_form, include_in_schema=False),
    Route("POST", "/requests/decide", decide_form, include_in_schema=False, access=MANAGE),
    Route("GET", "/requests/{id}", request_page, include_in_schema=False),
    Route("POST", "/requests/{id}/withdraw", withdraw_form, include_in_schema=False),
    Route("GET", "/notifications", notifications_page, include_in_schema=False),
    Route("POST", "/notifications/read", read_notifications_form, include_in_schema=False),
    Route("GET", "/api/v1/search", search, query=SearchQuery, response=SearchOut),
    Route("GET", "/api/v1/media/status", media_statuses, query=StatusQuery, response=StatusesOut),
    Route("GET", "/api/v1/media/{media_type}/{tmdb_id}", get_media, response=MediaOut),
    Route("GET", "/api/v1/requests", list_requests, query=RequestQuery, response=RequestListOut),
    Route("POST", "/api/v1/requests", create_request, body=RequestIn, response=RequestCreated),
    Route("GET", "/api/v1/requests/quota", my_quotas, response=QuotasOut),
    Route(
        "POST",
        "/api/v1/requests/approve",
        approve_many,
        body=BulkDecisionIn,
        response=BulkOut,
        access=MANAGE,
    ),
    Route(
        "POST",
        "/api/v1/requests/decline",
        decline_many,
        body=BulkDecisionIn,
        response=BulkOut,
        access=MANAGE,
    ),
    Route("GET", "/api/v1/requests/{id}", get_request, response=RequestOut),
    Route("DELETE", "/api/v1/requests/{id}", delete_request, response=Deleted),
    Route(
        "POST",
        "/api/v1/requests/{id}/approve",
        approve_request,
        body=DecisionIn,
        response=RequestOut,
        access=MANAGE,
    ),
    Route(
        "POST",
        "/api/v1/requests/{id}/decline",
        decline_request,
        body=DecisionIn,
        response=RequestOut,
        access=MANAGE,
    ),
    Route(
        "POST",
        "/api/v1/requests/{id}/retry",
        retry_request,
        body=DecisionIn,
        response=RequestOut,
        access=MANAGE,
    ),
    Route(
        "GET",
        "/api/v1/notifications",
        list_notifications,
        query=NotificationQuery,
        response=NotificationList,
    ),
    Route("POST", "/api/v1/notifications/read", read_notifications, body=ReadIn, response=ReadOut),
]
