"""The Discover page and the JSON API over TMDB: search and details."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp_jinja2
from aiohttp import web
from pydantic import Field

from medianest import (
    ApiError,
    ApiModel,
    PluginContext,
    RateLimited,
    Route,
    ServiceError,
    Unauthorised,
)

from . import pollers
from .client import TMDB, Details, ListName, MediaType, TitlePage, describe, not_found

T = TypeVar("T")

SECTIONS: tuple[tuple[ListName, str], ...] = (
    ("trending", "Trending this week"),
    ("popular_movies", "Popular films"),
    ("popular_tv", "Popular series"),
    ("upcoming", "Coming soon to cinemas"),
)
KIND = {"movie": "film", "tv": "series"}


class SearchQuery(ApiModel):
    query: str = Field(min_length=1, max_length=200, description="What to look for")
    page: int = Field(default=1, ge=1, le=500, description="Which page of results")


async def discover_page(request: web.Request, plugin: PluginContext) -> web.StreamResponse:
    """Trending, popular and upcoming films and series, from the lists the coordinator keeps."""
    lists = await pollers.DISCOVERY.latest(plugin)
    sections = []
    for name, heading in SECTIONS:
        if lists is None:
            break
        got = lists[name]
        sections.append(
            {
                "name": name,
                "heading": heading,
                "titles": got.value or [],
                "problem": got.describe() or None,
            }
        )
    return aiohttp_jinja2.render_template(
        "tmdb/discover.html",
        request,
        {"configured": lists is not None, "sections": sections},
    )


async def _answer(tmdb: TMDB, call: Callable[[], Awaitable[T]], missing: str) -> T:
    """What ``call()`` answers, or the error in MediaNest's shape (never a 500)."""
    if not tmdb.configured:
        raise ApiError(409, "TMDB is not set up yet: an administrator must enter its API key.")
    try:
        return await call()
    except RateLimited as exc:
        wait = 1 if exc.retry_after is None else max(1, round(exc.retry_after))
        raise ApiError(503, str(exc), headers={"Retry-After": str(wait)}) from None
    except Unauthorised as exc:
        raise ApiError(502, describe(exc)) from None
    except ServiceError as exc:
        if not_found(exc):
            raise ApiError(404, missing) from None
        raise ApiError(502, describe(exc)) from None


async def search(query: SearchQuery, plugin: PluginContext) -> TitlePage:
    """Search TMDB for films and series (people are left out)."""
    tmdb = TMDB(plugin)
    return await _answer(tmdb, lambda: tmdb.search(query.query, query.page), "")


async def _details(request: web.Request, plugin: PluginContext, media_type: MediaType) -> Details:
    tmdb = TMDB(plugin)
    given = request.match_info["tmdb_id"]
    missing = f"TMDB has no {KIND[media_type]} with the id {given}."
    if not (given.isascii() and given.isdigit()) or len(given) > 12:
        raise ApiError(404, missing)
    return await _answer(tmdb, lambda: tmdb.details(media_type, int(given)), missing)


async def movie(request: web.Request, plugin: PluginContext) -> Details:
    """A film's details: overview, runtime, genres, images, IMDb id."""
    return await _details(request, plugin, "movie")


async def tv(request: web.Request, plugin: PluginContext) -> Details:
    """A series' details: seasons with episode counts, images, TVDB and IMDb ids."""
    return await _details(request, plugin, "tv")


ROUTES = [
    Route("GET", "/discover", discover_page, include_in_schema=False, access="user"),
    Route("GET", "/api/v1/tmdb/search", search, query=SearchQuery, response=TitlePage),
    Route("GET", "/api/v1/tmdb/movie/{tmdb_id}", movie, response=Details),
    Route("GET", "/api/v1/tmdb/tv/{tmdb_id}", tv, response=Details),
]
