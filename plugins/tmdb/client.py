"""Every call MediaNest makes to TMDB (API v3), and the small models its answers are read into.

Answers are cached in the core cache, shared by every process: the image configuration and
details for hours, searches for minutes, lists for one poller interval. TMDB's rate limit is
respected: after a 429 nothing is sent until its ``Retry-After`` has passed, and a GET waits
that long once, then tries again; a second refusal is an error that says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from medianest import (
    ApiModel,
    Fetched,
    PluginContext,
    RateLimited,
    SearchResult,
    ServiceClient,
    ServiceError,
)

from .settings import V4_TOKEN_PREFIX, Settings

SERVICE = "tmdb"
LABEL = "TMDB"
VERSION = "TMDB API v3"
# How long answers are kept. TMDB's data changes slowly and its limit is per address.
CONFIGURATION_TTL = 12 * 3600.0
DETAILS_TTL = 6 * 3600.0
SEARCH_TTL = 10 * 60.0
# The last good list is kept this long, to show (with its age) while TMDB is away.
KEEP_LAST_GOOD = 7 * 86_400.0
# The longest MediaNest waits on TMDB's Retry-After within one request; longer is an error.
LONGEST_WAIT = 10.0
# Past the exact Retry-After, so that the retry is not refused for being early.
WAIT_MARGIN = 0.05

MediaType = Literal["movie", "tv"]
ListName = Literal["trending", "popular_movies", "popular_tv", "upcoming"]


class TMDBAnswerError(ServiceError):
    """TMDB answered with something MediaNest cannot read."""

    outcome = "bad_response"
    template = "{label} sent an answer MediaNest could not use"


def credentials(api_key: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that carry ``api_key``: a v4 read access token as a
    bearer token, a v3 key as the ``api_key`` parameter."""
    if not api_key:
        return {}, {}
    if api_key.startswith(V4_TOKEN_PREFIX):
        return {"Authorization": f"Bearer {api_key}"}, {}
    return {}, {"api_key": api_key}


def tmdb_says(exc: ServiceError) -> str:
    """TMDB's own explanation of an error (``status_message``), or ""."""
    answer = getattr(exc, "answer", None)
    if isinstance(answer, Mapping) and isinstance(answer.get("status_message"), str):
        return str(answer["status_message"])
    return ""


def describe(exc: ServiceError) -> str:
    """The error in words, with TMDB's explanation when it gave one."""
    said = tmdb_says(exc)
    return f"{exc}: {said}" if said and not isinstance(exc, RateLimited) else str(exc)


def not_found(exc: ServiceError) -> bool:
    return exc.status == 404


# --- what MediaNest reads out of TMDB's answers ------------------------------------------


class Title(ApiModel):
    """A film or series in a search answer or a list."""

    tmdb_id: int
    media_type: MediaType
    title: str
    year: int | None = None
    # The release date (films) or first air date (series), as TMDB gives it.
    date: str | None = None
    overview: str = ""
    poster_url: str | None = None

    def search_result(self) -> SearchResult:
        return SearchResult(
            source=SERVICE,
            media_type=self.media_type,
            title=self.title,
            year=self.year,
            overview=self.overview,
            poster_url=self.poster_url,
            ids={"tmdb": str(self.tmdb_id)},
        )


class TitlePage(ApiModel):
    """One page of search results: films and series only."""

    page: int
    total_pages: int
    results: list[Title]


class Season(ApiModel):
    season_number: int
    name: str
    episode_count: int
    air_date: str | None = None


class Details(ApiModel):
    """A film or series in full, with the ids other services use."""

    tmdb_id: int
    media_type: MediaType
    title: str
    year: int | None = None
    date: str | None = None
    overview: str = ""
    tagline: str = ""
    status: str = ""
    # Minutes: a film's length, or a series' usual episode length.
    runtime: int | None = None
    genres: list[str]
    # Series only; season 0 holds the specials.
    seasons: list[Season]
    poster_url: str | None = None
    backdrop_url: str | None = None
    imdb_id: str | None = None
    # TheTVDB's id of a series (what Sonarr adds series by).
    tvdb_id: int | None = None
    original_language: str | None = None

    @property
    def ids(self) -> dict[str, str]:
        found = {"tmdb": str(self.tmdb_id), "imdb": self.imdb_id, "tvdb": self.tvdb_id}
        return {k: str(v) for k, v in found.items() if v}


@dataclass(frozen=True)
class Images:
    """TMDB's image configuration: where posters and backdrops are, and in which sizes."""

    base_url: str
    poster_sizes: tuple[str, ...]
    backdrop_sizes: tuple[str, ...]

    def poster(self, path: str | None, width: int = 342) -> str | None:
        return self._url(path, self.poster_sizes, width)

    def backdrop(self, path: str | None, width: int = 1280) -> str | None:
        return self._url(path, self.backdrop_sizes, width)

    def _url(self, path: str | None, sizes: tuple[str, ...], width: int) -> str | None:
        if not path:
            return None
        return f"{self.base_url.rstrip('/')}/{_size(sizes, width)}/{path.lstrip('/')}"


# TMDB's published defaults, used until (or while) its configuration cannot be read.
DEFAULT_IMAGES = Images(
    "https://image.tmdb.org/t/p/",
    ("w92", "w154", "w185", "w342", "w500", "w780", "original"),
    ("w300", "w780", "w1280", "original"),
)


def _size(sizes: tuple[str, ...], width: int) -> str:
    """The smallest size at least ``width`` pixels wide, else the largest there is."""
    widths = sorted((int(s[1:]), s) for s in sizes if s[:1] == "w" and s[1:].isdigit())
    for w, size in widths:
        if w >= width:
            return size
    if "original" in sizes or not widths:
        return "original"
    return widths[-1][1]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _ImagesIn(_In):
    secure_base_url: str
    poster_sizes: list[str] = []
    backdrop_sizes: list[str] = []


class _ConfigurationIn(_In):
    images: _ImagesIn


class _ResultIn(_In):
    id: int
    media_type: str | None = None
    title: str | None = None
    name: str | None = None
    release_date: str | None = None
    first_air_date: str | None = None
    overview: str | None = None
    poster_path: str | None = None


class _PageIn(_In):
    page: int = 1
    total_pages: int = 1
    results: list[dict[str, Any]] = []


class _GenreIn(_In):
    name: str


class _SeasonIn(_In):
    season_number: int
    name: str = ""
    episode_count: int = 0
    air_date: str | None = None


class _EpisodeIn(_In):
    runtime: int | None = None


class _ExternalIdsIn(_In):
    imdb_id: str | None = None
    tvdb_id: int | None = None


class _DetailsIn(_In):
    id: int
    title: str | None = None
    name: str | None = None
    release_date: str | None = None
    first_air_date: str | None = None
    overview: str | None = None
    tagline: str | None = None
    status: str | None = None
    runtime: int | None = None
    episode_run_time: list[int] = []
    last_episode_to_air: _EpisodeIn | None = None
    genres: list[_GenreIn] = []
    seasons: list[_SeasonIn] = []
    poster_path: str | None = None
    backdrop_path: str | None = None
    imdb_id: str | None = None
    original_language: str | None = None
    external_ids: _ExternalIdsIn | None = None


def _year(date: str | None) -> int | None:
    return int(date[:4]) if date and date[:4].isdigit() else None


def _title(raw: Mapping[str, Any], images: Images, media_type: str | None) -> Title | None:
    """A film or series out of a result; ``None`` for people (and anything unreadable)."""
    try:
        item = _ResultIn.model_validate(raw)
    except ValidationError:
        return None
    kind: MediaType
    match item.media_type or media_type:
        case "movie":
            kind = "movie"
        case "tv":
            kind = "tv"
        case _:  # a person, or a kind TMDB adds later
            return None
    name = (item.title if kind == "movie" else item.name) or item.title or item.name
    date = (item.release_date if kind == "movie" else item.first_air_date) or None
    if not name:
        return None
    return Title(
        tmdb_id=item.id,
        media_type=kind,
        title=name,
        year=_year(date),
        date=date,
        overview=item.overview or "",
        poster_url=images.poster(item.poster_path),
    )


def _titles(raw: Any, images: Images, media_type: str | None) -> list[Title]:
    try:
        page = _PageIn.model_validate(raw)
    except ValidationError as exc:
        raise TMDBAnswerError(LABEL, f"unexpected list: {exc.error_count()} problems") from None
    return [t for r in page.results if (t := _title(r, images, media_type)) is not None]


def _details(raw: Any, images: Images, media_type: MediaType) -> Details:
    try:
        item = _DetailsIn.model_validate(raw)
    except ValidationError as exc:
        raise TMDBAnswerError(LABEL, f"unexpected details: {exc.error_count()} problems") from None
    external = item.external_ids or _ExternalIdsIn()
    if media_type == "movie":
        title, date, runtime = item.title, item.release_date, item.runtime
    else:
        title, date = item.name, item.first_air_date
        runtime = item.episode_run_time[0] if item.episode_run_time else None
        if runtime is None and item.last_episode_to_air is not None:
            runtime = item.last_episode_to_air.runtime
    return Details(
        tmdb_id=item.id,
        media_type=media_type,
        title=title or item.title or item.name or f"#{item.id}",
        year=_year(date),
        date=date or None,
        overview=item.overview or "",
        tagline=item.tagline or "",
        status=item.status or "",
        runtime=runtime or None,
        genres=[g.name for g in item.genres],
        seasons=[
            Season(
                season_number=s.season_number,
                name=s.name or f"Season {s.season_number}",
                episode_count=s.episode_count,
                air_date=s.air_date or None,
            )
            for s in item.seasons
        ],
        poster_url=images.poster(item.poster_path, 500),
        backdrop_url=images.backdrop(item.backdrop_path),
        imdb_id=external.imdb_id or item.imdb_id or None,
        tvdb_id=external.tvdb_id,
        original_language=item.original_language or None,
    )


# --- the client -----------------------------------------------------------------------------


async def _wait_out(exc: RateLimited) -> None:
    """Wait as long as TMDB asked, if that is short enough; else give up with its error."""
    wait = 1.0 if exc.retry_after is None else exc.retry_after
    if wait > LONGEST_WAIT:
        raise exc
    await asyncio.sleep(wait + WAIT_MARGIN)


def connection(settings: Settings) -> dict[str, Any]:
    """How to reach TMDB with ``settings``: the arguments of a service client."""
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    headers, params = credentials(key)
    return {
        "service": SERVICE,
        "instance": "default",
        "base_url": str(settings.api_url),
        "headers": headers,
        "params": params,
        "label": LABEL,
    }


class TMDB:
    """TMDB as the plugin's settings reach it; or, with ``settings`` and ``http`` (a trial
    client), as settings not saved yet would."""

    def __init__(
        self,
        plugin: PluginContext,
        settings: Settings | None = None,
        *,
        http: ServiceClient | None = None,
    ) -> None:
        s: Settings = plugin.settings if settings is None else settings
        self.configured = s.api_key is not None
        self.http = plugin.service_client(**connection(s)) if http is None else http
        self.language = s.language
        self.region = s.region

    async def _get(
        self, path: str, params: Mapping[str, Any] | None = None, *, ttl: float | None = None
    ) -> Any:
        try:
            return await self.http.get(path, params=params, ttl=ttl)
        except RateLimited as exc:
            await _wait_out(exc)
        # Once more; a second refusal reaches the caller as it is.
        return await self.http.get(path, params=params, ttl=ttl)

    async def _fetch(
        self, path: str, params: Mapping[str, Any], *, ttl: float, wait: bool
    ) -> Fetched[Any]:
        got = await self.http.fetch(path, params=params, ttl=ttl, keep_for=KEEP_LAST_GOOD)
        error = got.error
        if wait and isinstance(error, RateLimited):
            try:
                await _wait_out(error)
            except RateLimited:
                return got
            got = await self.http.fetch(path, params=params, ttl=ttl, keep_for=KEEP_LAST_GOOD)
        return got

    # --- configuration -------------------------------------------------------------------

    async def check(self) -> None:
        """Ask TMDB for its configuration now (not from the cache): reachable, key accepted."""
        await self._get("/3/configuration")

    async def images(self) -> Images:
        """The image configuration, cached for hours; TMDB's defaults while it cannot be read."""
        got = await self.http.fetch(
            "/3/configuration", ttl=CONFIGURATION_TTL, keep_for=KEEP_LAST_GOOD
        )
        try:
            config = _ConfigurationIn.model_validate(got.value)
        except ValidationError:
            return DEFAULT_IMAGES
        return Images(
            config.images.secure_base_url,
            tuple(config.images.poster_sizes) or DEFAULT_IMAGES.poster_sizes,
            tuple(config.images.backdrop_sizes) or DEFAULT_IMAGES.backdrop_sizes,
        )

    # --- search and details ----------------------------------------------------------------

    async def search(self, query: str, page: int = 1) -> TitlePage:
        """Films and series matching ``query`` (people are left out), cached for minutes."""
        query = " ".join(query.split())
        if not query:
            return TitlePage(page=1, total_pages=1, results=[])
        params = {
            "query": query,
            "include_adult": "false",
            "language": self.language,
            "page": page,
        }
        raw = await self._get("/3/search/multi", params, ttl=SEARCH_TTL)
        images = await self.images()
        try:
            answer = _PageIn.model_validate(raw)
        except ValidationError:
            raise TMDBAnswerError(LABEL, "unexpected search answer") from None
        results = [t for r in answer.results if (t := _title(r, images, None)) is not None]
        return TitlePage(page=answer.page, total_pages=answer.total_pages, results=results)

    async def details(self, media_type: MediaType, tmdb_id: int) -> Details:
        """A film's or series' details with its external ids, cached for hours."""
        path = f"/3/{media_type}/{int(tmdb_id)}"
        params = {"append_to_response": "external_ids", "language": self.language}
        raw = await self._get(path, params, ttl=DETAILS_TTL)
        return _details(raw, await self.images(), media_type)

    async def movie(self, tmdb_id: int) -> Details:
        return await self.details("movie", tmdb_id)

    async def tv(self, tmdb_id: int) -> Details:
        return await self.details("tv", tmdb_id)

    # --- lists -----------------------------------------------------------------------------

    def _list_request(self, name: ListName) -> tuple[str, dict[str, str], str | None]:
        language = {"language": self.language}
        local = {"language": self.language, "region": self.region}
        requests: dict[str, tuple[str, dict[str, str], str | None]] = {
            "trending": ("/3/trending/all/week", language, None),
            "popular_movies": ("/3/movie/popular", local, "movie"),
            "popular_tv": ("/3/tv/popular", language, "tv"),
            "upcoming": ("/3/movie/upcoming", local, "movie"),
        }
        return requests[name]

    async def titles(
        self, name: ListName, *, ttl: float, wait: bool = True
    ) -> Fetched[list[Title]]:
        """One of TMDB's lists (trending this week, popular, upcoming), films and series only.

        Never raises: on failure, the last good list with the error (see ``Fetched``).
        ``wait=False`` does not wait out a rate limit (for widgets, which must answer fast).
        """
        path, params, media_type = self._list_request(name)
        got = await self._fetch(path, params, ttl=ttl, wait=wait)
        if got.value is None:
            return Fetched(None, got.fetched_at, got.error)
        try:
            titles = _titles(got.value, await self.images(), media_type)
        except TMDBAnswerError as exc:
            return Fetched(None, None, exc)
        return Fetched(titles, got.fetched_at, got.error)
