"""The Movie Database: search, details and discovery of films and series.

Search (films and series; people are left out), details with the ids Sonarr and Radarr use,
a "Trending this week" widget and a Discover page of trending, popular and upcoming titles,
all within TMDB's rate limit.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from pydantic import BaseModel

from medianest import (
    HealthResult,
    MediaDetails,
    MediaNotFound,
    NavItem,
    PluginContext,
    Route,
    SearchResult,
    SeasonDetails,
    ServiceError,
    Unauthorised,
    Widget,
    hookimpl,
)

from . import pollers, routes, widgets
from .client import LABEL, TMDB, VERSION, Details, connection, describe, not_found
from .settings import Settings

TEMPLATES = Path(__file__).parent / "templates"

__all__ = ["Settings"]


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(
            name="trending",
            title="Trending this week",
            template="trending.html",
            load=widgets.load_trending,
            coordinator=pollers.DISCOVERY,
        )
    ]


@hookimpl
def register_routes() -> list[Route]:
    return routes.ROUTES


@hookimpl
def extra_nav_items(request: web.Request, plugin: PluginContext) -> list[NavItem]:
    return [NavItem("Discover", "/discover")]


async def _try(tmdb: TMDB, what: str) -> HealthResult:
    try:
        await tmdb.check()
    except Unauthorised as exc:
        return HealthResult(LABEL, "degraded", describe(exc), version=VERSION)
    except ServiceError as exc:
        # TMDB answered, but not with its configuration (a rate limit, an error page...).
        answered = exc.status is not None and exc.status < 500
        return HealthResult(LABEL, "degraded" if answered else "down", describe(exc))
    return HealthResult(
        LABEL, "ok", f"Connected with {what}.", latency_ms=tmdb.http.latency_ms, version=VERSION
    )


def _kind(settings: Settings) -> str:
    return "a read access token (v4)" if settings.uses_read_token else "an API key (v3)"


@hookimpl
async def check_connection(settings: Settings, plugin: PluginContext) -> HealthResult:
    if settings.api_key is None:
        return HealthResult(LABEL, "unconfigured", "No API key is set.")
    async with plugin.trial_client(**connection(settings)) as http:
        return await _try(TMDB(plugin, settings, http=http), _kind(settings))


@hookimpl
async def check_health(plugin: PluginContext) -> HealthResult:
    settings: Settings = plugin.settings
    if settings.api_key is None:
        return HealthResult(LABEL, "unconfigured", "No API key is set.")
    return await _try(TMDB(plugin), _kind(settings))


@hookimpl
async def search_media(query: str, plugin: PluginContext) -> list[SearchResult]:
    tmdb = TMDB(plugin)
    if not tmdb.configured:
        return []
    page = await tmdb.search(query)
    return [title.search_result() for title in page.results]


@hookimpl
async def lookup_media(media_type: str, tmdb_id: int, plugin: PluginContext) -> MediaDetails | None:
    """A film's or series' details for the request pages; ``MediaNotFound`` when TMDB has none."""
    tmdb = TMDB(plugin)
    if not tmdb.configured or media_type not in ("movie", "tv"):
        return None
    try:
        details = await tmdb.details("movie" if media_type == "movie" else "tv", tmdb_id)
    except ServiceError as exc:
        if not_found(exc):
            kind = "film" if media_type == "movie" else "series"
            raise MediaNotFound(f"TMDB has no {kind} with the id {tmdb_id}.") from None
        raise
    return media_details(details)


def media_details(details: Details) -> MediaDetails:
    return MediaDetails(
        source="tmdb",
        media_type=details.media_type,
        title=details.title,
        ids=details.ids,
        year=details.year,
        overview=details.overview,
        poster_url=details.poster_url,
        backdrop_url=details.backdrop_url,
        genres=tuple(details.genres),
        runtime=details.runtime,
        seasons=tuple(
            SeasonDetails(s.season_number, s.name, s.episode_count, s.air_date)
            for s in details.seasons
        ),
        # As Sonarr and Radarr users sort it: Japanese animation goes to the anime instance.
        is_anime="Animation" in details.genres and details.original_language == "ja",
    )
