"""Every call MediaNest makes to Sonarr and Radarr (API v3), and the models their answers are
read into.

One :class:`Arr` per configured instance, over the service client of that instance (its name is
the client's instance label, so "Radarr 4K is unreachable" names the right server). The API key
travels in the ``X-Api-Key`` header, which keeps it out of URLs, logs and cache keys.

The era of a server matters in a few places: Sonarr 3 takes a language profile on an add and
Sonarr 4 has none; Radarr 5 has ``/wanted/missing`` and Radarr 3 does not (its missing films are
the monitored ones without a file). The era is read from ``/system/status`` (cached).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from medianest import BadResponse, Fetched, PluginContext, ServiceClient, ServiceError

from .settings import APP_NAMES, ArrInstance, Kind, Settings

API = "/api/v3"
# The era of a server changes seldom: its status is asked at most this often.
STATUS_TTL = 300.0
# How many queue items are read (the widget shows the first of them; progress reads all).
QUEUE_PAGE = 50
UPCOMING_DAYS = 7

T = TypeVar("T")


# --- errors in the servers' own words ---------------------------------------------------------


def arr_says(answer: Any) -> str:
    """What Sonarr or Radarr said in an error answer: its validation failures (a list of
    ``{"propertyName", "errorMessage"}``), its ``message``, or ""."""
    if isinstance(answer, list):
        messages = [
            str(f.get("errorMessage"))
            for f in answer
            if isinstance(f, Mapping) and f.get("errorMessage")
        ]
        return "; ".join(dict.fromkeys(messages))
    if isinstance(answer, Mapping):
        for key in ("message", "error"):
            if isinstance(answer.get(key), str) and answer[key]:
                return str(answer[key])
    return ""


def describe(exc: ServiceError) -> str:
    """The error in words, with the server's explanation when it gave one."""
    said = arr_says(exc.answer) if exc.status is not None and exc.status != 401 else ""
    return f"{exc}: {said}" if said else str(exc)


def refused_as_duplicate(exc: ServiceError) -> bool:
    """An add refused because the film or series is in the library already."""
    return isinstance(exc.answer, list) and any(
        isinstance(f, Mapping)
        and f.get("errorCode") in ("MovieExistsValidator", "SeriesExistsValidator")
        for f in exc.answer
    )


# --- small helpers --------------------------------------------------------------------------


def span_seconds(text: str | None) -> int | None:
    """Seconds of a .NET ``TimeSpan``: ``00:04:10``, ``1.02:03:04``, ``00:00:01.5``."""
    if not text:
        return None
    found = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+)(?:\.\d+)?", text.strip())
    if not found:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def duration_text(seconds: int) -> str:
    """``4 min``, ``1 h 5 min``, ``2 d 3 h``; under a minute, ``< 1 min``."""
    if seconds < 60:
        return "< 1 min"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def size_text(size: float) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def episode_code(season: int | None, number: int | None) -> str:
    if season is None or number is None:
        return ""
    return f"S{season:02d}E{number:02d}"


# --- models ---------------------------------------------------------------------------------


class _Model(BaseModel):
    """An answer of the servers: camelCase fields, anything unknown ignored."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, alias_generator=to_camel
    )


class SystemStatus(_Model):
    app_name: str = ""
    instance_name: str = ""
    version: str = ""

    @property
    def major(self) -> int:
        head = self.version.split(".")[0]
        return int(head) if head.isdigit() else 0


class HealthCheck(_Model):
    """One of the server's own health warnings (``GET /health``)."""

    source: str = ""
    type: str = "warning"
    message: str = ""
    wiki_url: str | None = None

    @property
    def link(self) -> str | None:
        """The wiki page about it, when it is a web address."""
        url = self.wiki_url or ""
        return url if url.startswith(("https://", "http://")) else None


def _health_checks(data: Any) -> tuple[HealthCheck, ...]:
    checks = []
    for item in data:
        wiki = item.get("wikiUrl")
        # Sonarr writes it as a string, the spec as an object with a fullUri.
        if isinstance(wiki, Mapping):
            wiki = wiki.get("fullUri")
        checks.append(HealthCheck.model_validate({**item, "wikiUrl": wiki}))
    return tuple(checks)


class Disk(_Model):
    path: str = ""
    label: str = ""
    free_space: int = 0
    total_space: int = 0

    @property
    def used_percent(self) -> int:
        if self.total_space <= 0:
            return 0
        return round(100 * (self.total_space - self.free_space) / self.total_space)

    @property
    def free_text(self) -> str:
        return size_text(self.free_space)

    @property
    def total_text(self) -> str:
        return size_text(self.total_space)


class QualityProfile(_Model):
    id: int
    name: str = ""


class RootFolder(_Model):
    id: int | None = None
    path: str
    accessible: bool = True
    free_space: int | None = None


class LanguageProfile(_Model):
    id: int
    name: str = ""


class Tag(_Model):
    id: int
    label: str = ""


class MediaRef(_Model):
    """The film or series a queue item, a calendar entry or a library entry is about."""

    id: int | None = None
    title: str = ""
    year: int | None = None
    tmdb_id: int | None = None
    tvdb_id: int | None = None


class EpisodeRef(_Model):
    season_number: int | None = None
    episode_number: int | None = None
    title: str = ""


# Queue states as the widget and the request workflow name them.
STATE_LABELS = {
    "queued": "Queued",
    "paused": "Paused",
    "downloading": "Downloading",
    "importing": "Importing",
    "warning": "Needs attention",
    "failed": "Failed",
}


class QueueItem(_Model):
    """One download in an instance's queue."""

    id: int
    title: str = ""
    size: float = 0
    sizeleft: float = 0
    timeleft: str | None = None
    estimated_completion_time: datetime | None = None
    status: str = ""
    tracked_download_status: str = ""
    tracked_download_state: str = ""
    error_message: str | None = None
    protocol: str = ""
    movie: MediaRef | None = None
    series: MediaRef | None = None
    episode: EpisodeRef | None = None

    @property
    def percent(self) -> float:
        if self.size <= 0:
            return 0.0
        return round(100 * (self.size - self.sizeleft) / self.size, 1)

    @property
    def state(self) -> str:
        """queued, paused, downloading, importing, warning or failed."""
        tracked = self.tracked_download_state
        if self.status == "failed" or tracked in ("failed", "failedPending"):
            return "failed"
        if self.tracked_download_status == "error":
            return "failed"
        if self.tracked_download_status == "warning" or self.status == "warning":
            return "warning"
        if tracked in ("importPending", "importing", "importBlocked") or self.status in (
            "completed",
        ):
            return "importing"
        if self.status == "paused":
            return "paused"
        if self.status in ("queued", "delay", "downloadClientUnavailable"):
            return "queued"
        return "downloading"

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def seconds_left(self) -> int | None:
        return span_seconds(self.timeleft)

    @property
    def time_left_text(self) -> str:
        left = self.seconds_left
        if left is None or self.state not in ("downloading",):
            return ""
        return duration_text(left)

    @property
    def name(self) -> str:
        """What people recognise: "Breaking Bad S01E02 · Cat's in the Bag...", "Dune (2021)"."""
        movie = self.movie
        if movie is not None and movie.title:
            return f"{movie.title} ({movie.year})" if movie.year else movie.title
        if self.series is not None and self.series.title:
            code = episode_code(
                self.episode.season_number if self.episode else None,
                self.episode.episode_number if self.episode else None,
            )
            name = f"{self.series.title} {code}".strip()
            if self.episode is not None and self.episode.title:
                name += f" · {self.episode.title}"
            return name
        return self.title


class Queue(_Model):
    total_records: int = 0
    records: tuple[QueueItem, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.records


class Upcoming(_Model):
    """One thing on the calendar: an episode airing or a film being released."""

    title: str
    detail: str = ""
    when: datetime
    has_file: bool = False

    @property
    def day(self) -> str:
        return f"{self.when.astimezone():%a %d %b}"

    @property
    def time(self) -> str:
        return f"{self.when.astimezone():%H:%M}"


RELEASES = (
    ("inCinemas", "In cinemas"),
    ("digitalRelease", "Digital release"),
    ("physicalRelease", "Physical release"),
)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_sonarr_calendar(data: Any) -> tuple[Upcoming, ...]:
    entries = []
    for item in data:
        when = _aware(item.get("airDateUtc"))
        if when is None:
            continue
        series = (item.get("series") or {}).get("title", "")
        code = episode_code(item.get("seasonNumber"), item.get("episodeNumber"))
        entries.append(
            Upcoming(
                title=f"{series} {code}".strip(),
                detail=str(item.get("title") or ""),
                when=when,
                has_file=bool(item.get("hasFile")),
            )
        )
    return tuple(sorted(entries, key=lambda e: e.when))


def parse_radarr_calendar(data: Any, start: datetime, end: datetime) -> tuple[Upcoming, ...]:
    entries = []
    for item in data:
        title = str(item.get("title") or "")
        if item.get("year"):
            title += f" ({item['year']})"
        for key, label in RELEASES:
            when = _aware(item.get(key))
            if when is not None and start <= when < end:
                entries.append(
                    Upcoming(title=title, detail=label, when=when, has_file=bool(item["hasFile"]))
                )
    return tuple(sorted(entries, key=lambda e: e.when))


class Wanted(_Model):
    """How much the instance is missing: monitored, aired or released, without a file."""

    missing: int = 0
    unit: str = "episodes"

    @property
    def label(self) -> str:
        """ "episodes missing", "film missing": what follows the count."""
        one = self.unit.rstrip("s")
        return f"{one if self.missing == 1 else self.unit} missing"


class Movie(MediaRef):
    """A film in Radarr's library (``resource`` is the whole answer, sent back on a PUT)."""

    monitored: bool = False
    has_file: bool = False
    resource: dict[str, Any] = Field(default_factory=dict, exclude=True)


class MovieLookup(_Model):
    title: str
    tmdb_id: int
    year: int | None = None


class Season(_Model):
    season_number: int
    monitored: bool = False


class Series(MediaRef):
    """A series in Sonarr's library."""

    monitored: bool = False
    seasons: tuple[Season, ...] = ()

    def monitored_seasons(self) -> set[int]:
        return {s.season_number for s in self.seasons if s.monitored}


class SeriesLookup(_Model):
    title: str
    tvdb_id: int
    year: int | None = None
    seasons: tuple[Season, ...] = ()


class Options(_Model):
    """What the admin form offers for an instance, read live from it."""

    version: str = ""
    quality_profiles: tuple[QualityProfile, ...] = ()
    root_folders: tuple[RootFolder, ...] = ()
    language_profiles: tuple[LanguageProfile, ...] = ()
    tags: tuple[Tag, ...] = ()


# --- the client -----------------------------------------------------------------------------


def _many(model: type[_Model]) -> Callable[[Any], tuple[Any, ...]]:
    def parse(data: Any) -> tuple[Any, ...]:
        if not isinstance(data, list):
            raise ValueError("expected a list")
        return tuple(model.model_validate(item) for item in data)

    return parse


class Arr:
    """One Sonarr or Radarr instance."""

    def __init__(self, kind: Kind, index: int, settings: ArrInstance, http: ServiceClient) -> None:
        self.kind = kind
        self.index = index
        self.settings = settings
        self.http = http

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def app(self) -> str:
        return APP_NAMES[self.kind]

    @property
    def is_sonarr(self) -> bool:
        return self.kind == "sonarr"

    def _error(self, detail: str) -> BadResponse:
        return BadResponse(self.name, detail)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.http.request(method, API + path, **kwargs)

    async def _get(self, path: str, parse: Callable[[Any], T], **params: Any) -> T:
        """GET now (no cache), parsed; a :class:`ServiceError` when it fails."""
        return self._parsed(path, parse, await self.call("GET", path, params=params or None))

    def _parsed(self, path: str, parse: Callable[[Any], T], data: Any) -> T:
        try:
            return parse(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise self._error(f"unexpected answer to {path}: {exc}") from exc

    async def fetch(
        self, path: str, parse: Callable[[Any], T], *, ttl: float, **params: Any
    ) -> Fetched[T]:
        """GET through the cache (one upstream call per ``ttl`` however many ask), parsed; on
        failure the last good answer with the error, never an exception."""
        got = await self.http.fetch(API + path, params=params or None, ttl=ttl)
        if got.value is None:
            return Fetched(None, None, got.error)
        try:
            value = parse(got.value)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            bad = self._error(f"unexpected answer to {path}: {exc}")
            return Fetched(None, None, got.error or bad)
        return Fetched(value, got.fetched_at, got.error)

    async def forget(self, path: str, **params: Any) -> None:
        """Drop the cached answer of ``path`` so that the next fetch asks the server."""
        await self.http.forget(API + path, params=params or None)

    # --- system -------------------------------------------------------------------------

    async def status(self, *, ttl: float | None = None) -> SystemStatus:
        if ttl is None:
            return await self._get("/system/status", SystemStatus.model_validate)
        return SystemStatus.model_validate(await self.http.get(API + "/system/status", ttl=ttl))

    async def major(self) -> int:
        """The server's major version (cached); 3 when it cannot be told."""
        return (await self.status(ttl=STATUS_TTL)).major or 3

    async def health(self, *, ttl: float) -> Fetched[tuple[HealthCheck, ...]]:
        return await self.fetch("/health", _health_checks, ttl=ttl)

    async def disks(self, *, ttl: float) -> Fetched[tuple[Disk, ...]]:
        return await self.fetch("/diskspace", _many(Disk), ttl=ttl)

    async def health_now(self) -> tuple[HealthCheck, ...]:
        return await self._get("/health", _health_checks)

    # --- what the admin form offers ----------------------------------------------------

    async def quality_profiles(self, *, ttl: float | None = None) -> tuple[QualityProfile, ...]:
        """The instance's quality profiles: asked now, or with ``ttl`` from the cache."""
        return await self._listing("/qualityprofile", _many(QualityProfile), ttl)

    async def root_folders(self, *, ttl: float | None = None) -> tuple[RootFolder, ...]:
        """The instance's root folders: asked now, or with ``ttl`` from the cache."""
        return await self._listing("/rootfolder", _many(RootFolder), ttl)

    async def _listing(self, path: str, parse: Callable[[Any], T], ttl: float | None) -> T:
        if ttl is None:
            return await self._get(path, parse)
        return self._parsed(path, parse, await self.http.get(API + path, ttl=ttl))

    async def language_profiles(self) -> tuple[LanguageProfile, ...]:
        """Sonarr 3's language profiles; none on Sonarr 4 (only its placeholder) or Radarr."""
        return await self._get("/languageprofile", _many(LanguageProfile))

    async def tags(self) -> tuple[Tag, ...]:
        return await self._get("/tag", _many(Tag))

    async def options(self) -> Options:
        status = await self.status()
        languages: tuple[LanguageProfile, ...] = ()
        if self.is_sonarr and status.major < 4:
            languages = await self.language_profiles()
        return Options(
            version=status.version,
            quality_profiles=await self.quality_profiles(),
            root_folders=await self.root_folders(),
            language_profiles=languages,
            tags=await self.tags(),
        )

    # --- queue, calendar, wanted --------------------------------------------------------

    def queue_params(self) -> dict[str, Any]:
        include = (
            {"includeSeries": "true", "includeEpisode": "true"}
            if self.is_sonarr
            else {"includeMovie": "true"}
        )
        return {"page": 1, "pageSize": QUEUE_PAGE, **include}

    async def queue(self, *, ttl: float) -> Fetched[Queue]:
        return await self.fetch("/queue", Queue.model_validate, ttl=ttl, **self.queue_params())

    async def forget_queue(self) -> None:
        await self.forget("/queue", **self.queue_params())

    @staticmethod
    def calendar_window(today: date | None = None) -> tuple[datetime, datetime]:
        """From the start of today (UTC) for UPCOMING_DAYS days: the same window, hence the
        same cache entry, all day long."""
        day = today or datetime.now(UTC).date()
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=UPCOMING_DAYS)

    async def upcoming(self, *, ttl: float) -> Fetched[tuple[Upcoming, ...]]:
        start, end = self.calendar_window()
        window = {"start": start.date().isoformat(), "end": end.date().isoformat()}
        if self.is_sonarr:
            return await self.fetch(
                "/calendar", parse_sonarr_calendar, ttl=ttl, includeSeries="true", **window
            )
        return await self.fetch(
            "/calendar", lambda data: parse_radarr_calendar(data, start, end), ttl=ttl, **window
        )

    async def wanted(self, *, ttl: float) -> Fetched[Wanted]:
        """Sonarr: its wanted/missing episodes; Radarr 5: its wanted/missing films; Radarr 3
        (no such call): the monitored films without a file."""
        if self.is_sonarr:
            return await self.fetch(
                "/wanted/missing", _missing("episodes"), ttl=ttl, page=1, pageSize=1
            )
        got = await self.http.fetch(API + "/system/status", ttl=STATUS_TTL)
        if got.value is None:
            return Fetched(None, None, got.error)
        if SystemStatus.model_validate(got.value).major >= 5:
            return await self.fetch(
                "/wanted/missing", _missing("films"), ttl=ttl, page=1, pageSize=1
            )
        return await self.fetch("/movie", _monitored_without_file, ttl=ttl)

    async def forget_wanted(self) -> None:
        await self.forget("/wanted/missing", page=1, pageSize=1)
        if not self.is_sonarr:
            await self.forget("/movie")

    # --- Radarr's library ---------------------------------------------------------------

    async def movie(self, tmdb_id: int) -> Movie | None:
        """The film with this TMDB id in the library, if it is there."""
        found = await self.call("GET", "/movie", params={"tmdbId": tmdb_id})
        for item in found if isinstance(found, list) else []:
            if item.get("tmdbId") == tmdb_id:
                return Movie.model_validate({**item, "resource": item})
        return None

    async def lookup_movie(self, tmdb_id: int) -> MovieLookup | None:
        try:
            found = await self.call("GET", "/movie/lookup/tmdb", params={"tmdbId": tmdb_id})
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return MovieLookup.model_validate(found)
        except ValidationError as exc:
            raise self._error(f"unexpected answer to the film lookup: {exc}") from exc

    async def add_movie(self, body: Mapping[str, Any]) -> Movie:
        added = await self.call("POST", "/movie", json=dict(body))
        return Movie.model_validate({**added, "resource": added})

    async def update_movie(self, movie: Movie, **changes: Any) -> Movie:
        updated = await self.call("PUT", f"/movie/{movie.id}", json={**movie.resource, **changes})
        return Movie.model_validate({**updated, "resource": updated})

    # --- Sonarr's library ---------------------------------------------------------------

    async def series(self, tvdb_id: int) -> Series | None:
        """The series with this TVDB id in the library, if it is there."""
        found = await self.call("GET", "/series", params={"tvdbId": tvdb_id})
        for item in found if isinstance(found, list) else []:
            if item.get("tvdbId") == tvdb_id:
                return Series.model_validate(item)
        return None

    async def lookup_series(self, tvdb_id: int) -> SeriesLookup | None:
        found = await self.call("GET", "/series/lookup", params={"term": f"tvdb:{tvdb_id}"})
        for item in found if isinstance(found, list) else []:
            if item.get("tvdbId") == tvdb_id:
                return SeriesLookup.model_validate(item)
        return None

    async def add_series(self, body: Mapping[str, Any]) -> Series:
        return Series.model_validate(await self.call("POST", "/series", json=dict(body)))

    async def monitor_seasons(self, series_id: int, seasons: set[int]) -> Series:
        """Monitor the series and these seasons of it (the others stay as they are)."""
        resource = await self.call("GET", f"/series/{series_id}")
        if not isinstance(resource, dict):
            raise self._error("unexpected answer to the series")
        resource = dict(resource)
        resource["monitored"] = True
        resource["seasons"] = [
            {**s, "monitored": True} if s.get("seasonNumber") in seasons else s
            for s in resource.get("seasons") or []
        ]
        # What the servers only report is not sent back (Sonarr 4 has no language profiles).
        for read_only in ("ended", "statistics"):
            resource.pop(read_only, None)
        resource["seasons"] = [
            {k: v for k, v in s.items() if k != "statistics"} for s in resource["seasons"]
        ]
        if await self.major() >= 4:
            resource.pop("languageProfileId", None)
        updated = await self.call("PUT", f"/series/{series_id}", json=resource)
        return Series.model_validate(updated)

    # --- commands -----------------------------------------------------------------------

    async def command(self, name: str, **fields: Any) -> int | None:
        """Queue a command (``SeriesSearch`` with ``seriesId``, ``MoviesSearch`` with
        ``movieIds``); its id."""
        answer = await self.call("POST", "/command", json={"name": name, **fields})
        return answer.get("id") if isinstance(answer, dict) else None


def _missing(unit: str) -> Callable[[Any], Wanted]:
    def parse(data: Any) -> Wanted:
        return Wanted(missing=int(data["totalRecords"]), unit=unit)

    return parse


def _monitored_without_file(data: Any) -> Wanted:
    if not isinstance(data, list):
        raise ValueError("expected a list of films")
    missing = sum(1 for m in data if m.get("monitored") and not m.get("hasFile"))
    return Wanted(missing=missing, unit="films")


# --- which clients ------------------------------------------------------------------------


def _connection(kind: Kind, settings: ArrInstance) -> dict[str, Any]:
    return {
        "service": kind,
        "instance": settings.name,
        "base_url": settings.base_url,
        "headers": {"X-Api-Key": settings.key},
        "label": settings.name,
    }


def instance(plugin: PluginContext, kind: Kind, index: int) -> Arr | None:
    """The client of one configured instance; None when there is no such instance."""
    settings: Settings = plugin.settings
    configured = settings.instances(kind)
    if not 0 <= index < len(configured):
        return None
    chosen = configured[index]
    return Arr(kind, index, chosen, plugin.service_client(**_connection(kind, chosen)))


def instances(plugin: PluginContext, kind: Kind | None = None) -> list[Arr]:
    """The clients of every configured instance (of ``kind``), in the settings' order."""
    settings: Settings = plugin.settings
    found = []
    for k, index, _ in settings.all():
        if kind is None or k == kind:
            arr = instance(plugin, k, index)
            if arr is not None:
                found.append(arr)
    return found


@asynccontextmanager
async def trial(plugin: PluginContext, kind: Kind, settings: ArrInstance) -> AsyncIterator[Arr]:
    """A client for proposed settings, closed afterwards; no retries, so that a wrong address
    is reported at once."""
    async with plugin.trial_client(**_connection(kind, settings), retries=0) as http:
        yield Arr(kind, -1, settings, http)


def pick(candidates: Sequence[Arr], *, is_4k: bool, is_anime: bool) -> Arr | None:
    """The instance that serves a request: the one made for it (4K or not, anime or not),
    else the one that matches on 4K, else on anime, else the first."""
    for matches in (
        lambda a: a.settings.is_4k == is_4k and a.settings.is_anime == is_anime,
        lambda a: a.settings.is_4k == is_4k,
        lambda a: a.settings.is_anime == is_anime,
    ):
        for arr in candidates:
            if matches(arr):
                return arr
    return candidates[0] if candidates else None
