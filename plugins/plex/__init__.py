"""Plex Media Server: sign-in with Plex, server status, now playing, recently added, availability.

Sign-in with Plex (the plex.tv PIN flow) lets in the owner of the configured server and the
people it is shared with. With the owner's token (from the settings, or from the owner's own
sign-in), the dashboard shows the server, what it plays, what was added and how big each library
is; searches find what is already in Plex; other parts of MediaNest ask which films and seasons
are there (``check_availability``), have a library scanned (``refresh_library``) and files put
in a collection (``collect_media``).

Hook implementations only; the calls are in ``client``, the loaders in ``widgets``, the
background refreshes in ``pollers`` and the availability index in ``availability``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medianest import (
    Availability,
    HealthResult,
    PluginContext,
    Poller,
    Route,
    SearchResult,
    ServiceError,
    SignInProvider,
    Unauthorised,
    Widget,
    hookimpl,
)

from . import availability, collect, plextv, pollers, posters, signin, widgets
from .client import LABEL, SERVICE, Plex, connect, headers, token_for
from .settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
SEARCH_LIMIT = 10
SEARCH_TTL = 60.0

__all__ = ["Settings"]


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_sign_in_providers() -> list[SignInProvider]:
    return [SignInProvider("plex", "Sign in with Plex", signin.START)]


@hookimpl
def register_routes() -> list[Route]:
    return [
        Route("GET", signin.START, signin.start, access="public", include_in_schema=False),
        Route("GET", signin.CALLBACK, signin.callback, access="public", include_in_schema=False),
        Route("GET", posters.PATH, posters.poster, include_in_schema=False),
    ]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget("status", "Plex", "status.html", widgets.load_status, coordinator=pollers.STATUS),
        Widget(
            "now-playing",
            "Now playing",
            "now_playing.html",
            widgets.load_now_playing,
            coordinator=pollers.SESSIONS,
            # Admins see who watches what; everyone else a count.
            audience="role",
        ),
        Widget(
            "recent",
            "Recently added",
            "recent.html",
            widgets.load_recent,
            coordinator=pollers.RECENT,
        ),
        Widget(
            "libraries",
            "Libraries",
            "libraries.html",
            widgets.load_libraries,
            coordinator=pollers.LIBRARIES,
        ),
    ]


@hookimpl
def register_pollers() -> list[Poller]:
    return pollers.pollers()


@hookimpl
def register_ws_topics() -> list[str]:
    return list(pollers.TOPICS)


@hookimpl
async def activate(plugin: PluginContext) -> None:
    plugin.state["http"] = plextv.new_session()


@hookimpl
async def deactivate(plugin: PluginContext) -> None:
    session = plugin.state.pop("http", None)
    if session is not None:
        await session.close()


# --- health -------------------------------------------------------------------------------


@hookimpl
async def check_connection(settings: Settings, plugin: PluginContext) -> HealthResult:
    """Try the proposed address, token and libraries for real before they are saved."""
    if settings.url is None:
        return HealthResult(LABEL, "unconfigured", "No server address is set.")
    token, source = await token_for(plugin, settings, fresh=True)
    async with plugin.trial_client(
        SERVICE, "trial", str(settings.url), headers=headers(plugin, token), label=LABEL
    ) as http:
        return await _health(Plex(http, settings, source))


@hookimpl
async def check_health(plugin: PluginContext) -> HealthResult:
    plex = await connect(plugin)
    if plex is None:
        return HealthResult(LABEL, "unconfigured", "No server address is set.")
    return await _health(plex)


async def _health(plex: Plex) -> HealthResult:
    """``/identity`` answers (the version), the token is taken (the libraries), and the
    libraries to watch exist."""
    started = time.perf_counter()
    try:
        identity = await plex.identity()
    except ServiceError as exc:
        return HealthResult(LABEL, "down", str(exc))
    version = identity.version or None
    name = f"Plex Media Server {version}" if version else "Plex Media Server"
    if not plex.has_token:
        return HealthResult(
            LABEL,
            "unconfigured",
            f"{name} answers, but MediaNest has no token for it: enter the owner's token, "
            "or sign in with Plex as the server's owner.",
            _since(started),
            version,
        )
    try:
        server = await plex.server()
        sections = await plex.sections()
    except Unauthorised:
        if plex.token_source == "sign-in":
            message = (
                "Plex refused the token of the owner's sign-in with Plex: sign in with Plex "
                "again as the server's owner, or enter a token."
            )
        else:
            message = "Plex refused the token: check it (it must be the server owner's)."
        return HealthResult(LABEL, "degraded", message, _since(started), version)
    except ServiceError as exc:
        return HealthResult(LABEL, "down", str(exc), _since(started), version)
    watched = plex.watched(sections)
    known = {s.key for s in watched} | {s.title.casefold() for s in watched}
    missing = [w for w in plex.settings.libraries if w not in known and w.casefold() not in known]
    if missing:
        have = ", ".join(s.title for s in sections) or "none"
        return HealthResult(
            LABEL,
            "degraded",
            f"{server.name} has no film, series or music library named "
            f"{', '.join(missing)} (its libraries: {have}).",
            _since(started),
            version,
        )
    titles = ", ".join(s.title for s in watched) or "no libraries yet"
    return HealthResult(
        LABEL, "ok", f"{server.name}: {name}, watching {titles}.", _since(started), version
    )


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# --- what others ask of Plex ----------------------------------------------------------------


@hookimpl
async def search_media(query: str, plugin: PluginContext) -> list[SearchResult]:
    """Films and series of the watched libraries that match ``query``, with their ids."""
    query = query.strip()
    plex = await pollers.ready(plugin)
    if isinstance(plex, pollers.NotReady) or not query:
        return []
    watched = {s.key for s in plex.watched(await plex.sections(ttl=pollers.SECTIONS_TTL))}
    found = [
        i
        for i in await plex.search(query, SEARCH_LIMIT, ttl=SEARCH_TTL)
        if i.type in ("movie", "show") and i.section_key in watched
    ]
    # The search answer carries no ids; one call reads them for every match.
    detailed = {i.rating_key: i for i in await plex.metadata([i.rating_key for i in found])}
    results = []
    for hit in found:
        ids = dict(detailed[hit.rating_key].guids) if hit.rating_key in detailed else {}
        results.append(
            SearchResult(
                source="plex",
                media_type="movie" if hit.type == "movie" else "tv",
                title=hit.title,
                year=hit.year,
                overview=hit.summary,
                poster_url=pollers.poster_path(hit.rating_key),
                ids=ids | {"plex": hit.rating_key},
            )
        )
    return results


@hookimpl
async def check_availability(
    ids: Mapping[str, Any], media_type: str, plugin: PluginContext
) -> Availability | None:
    """Whether the film or series with these ids is in the watched libraries, from the last
    scan; ``None`` before the first scan."""
    plex = await pollers.ready(plugin)
    if isinstance(plex, pollers.NotReady):
        return None
    index = await plugin.cache.get(availability.index_key(plex))
    if index is None:
        return None
    return availability.answer(plugin, index, ids, media_type)


@hookimpl
async def refresh_library(path: str | None, plugin: PluginContext) -> list[str] | None:
    """Scan the library holding ``path`` (only that folder), or every watched library."""
    plex = await pollers.ready(plugin)
    if isinstance(plex, pollers.NotReady):
        return None
    sections = await plex.sections(ttl=pollers.SECTIONS_TTL)
    if path is None:
        chosen = plex.watched(sections)
    else:
        closeness = {s.key: s.holds(path) for s in sections}
        best = max(closeness.values(), default=0)
        chosen = [s for s in sections if best and closeness[s.key] == best]
    for section in chosen:
        await plex.refresh(section.key, path)
    if chosen:
        plugin.log.info("asked Plex to scan %s", ", ".join(s.title for s in chosen))
    return [s.title for s in chosen] or None


@hookimpl
async def collect_media(title: str, paths: Sequence[str], plugin: PluginContext) -> str | None:
    """Wait (up to a few minutes) for Plex to add the files, then put them in the collection
    ``title`` of their library, made when there is none."""
    plex = await pollers.ready(plugin)
    if isinstance(plex, pollers.NotReady) or not paths or not title.strip():
        return None
    return await collect.collect(plugin, plex, title.strip(), list(paths))
