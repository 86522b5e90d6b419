"""Approved requests into Radarr and Sonarr, and their progress back out of the queues.

Fulfilment looks before it adds: a film or series already in the library is never added twice
(a series gets the newly requested seasons monitored and searched for instead), so fulfilling
the same request again, after a crash or by a second click, changes nothing. It never raises:
a server that is down, a key that is refused or a profile that is missing comes back as
``ok=False`` with the reason in words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from medianest import (
    BadResponse,
    FulfilmentResult,
    PluginContext,
    Progress,
    RequestInfo,
    ServiceError,
)

from . import pollers
from .client import (
    Arr,
    MovieLookup,
    SeriesLookup,
    arr_says,
    describe,
    instances,
    pick,
    refused_as_duplicate,
)
from .settings import Kind

KINDS_BY_MEDIA: dict[str, Kind] = {"movie": "radarr", "tv": "sonarr"}
ID_SCHEME: dict[Kind, str] = {"radarr": "tmdb", "sonarr": "tvdb"}
ID_NAMES = {"tmdb": "TMDB", "tvdb": "TVDB"}
# Fulfilments check the chosen profile and folder against lists this old at most; a choice
# missing from them is looked for again at once (it may be new), so only a profile or folder
# removed in the last minutes is found missing by the instance itself when the add is refused.
CHOICES_TTL = 300.0


class Refusal(Exception):
    """The request cannot be carried out; the message says why, in words."""


def _number(ids: Mapping[str, Any], scheme: str) -> int | None:
    value = ids.get(scheme)
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _seasons(details: Mapping[str, Any]) -> set[int]:
    seasons = set()
    for value in details.get("seasons") or ():
        try:
            seasons.add(int(value))
        except (TypeError, ValueError):
            continue
    return seasons


def _listed(numbers: Iterable[int]) -> str:
    ordered = sorted(numbers)
    word = "season" if len(ordered) == 1 else "seasons"
    return f"{word} {', '.join(str(n) for n in ordered)}"


# --- fulfilment -----------------------------------------------------------------------------


async def fulfil(request: RequestInfo, plugin: PluginContext) -> FulfilmentResult | None:
    """Carry out ``request`` on the instance made for it; None when no instance serves its
    kind of media (another plugin may)."""
    kind = KINDS_BY_MEDIA.get(request.media_type)
    if kind is None:
        return None
    candidates = instances(plugin, kind)
    if not candidates:
        return None
    details = request.details or {}
    arr = pick(candidates, is_4k=bool(details.get("is_4k")), is_anime=bool(details.get("is_anime")))
    assert arr is not None
    try:
        if kind == "radarr":
            result, changed = await _fulfil_movie(arr, request)
        else:
            result, changed = await _fulfil_series(arr, request)
    except Refusal as exc:
        return FulfilmentResult(False, str(exc))
    except BadResponse as exc:
        if exc.status == 400:
            # Perhaps a profile or folder removed since the lists were read: a retry reads them.
            await arr.forget("/qualityprofile")
            await arr.forget("/rootfolder")
        said = arr_says(exc.answer)
        if exc.status == 400 and said:
            return FulfilmentResult(False, f"{arr.name} refused to add {request.title}: {said}")
        return FulfilmentResult(False, f"Could not add {request.title}: {describe(exc)}")
    except ServiceError as exc:
        return FulfilmentResult(False, f"Could not add {request.title}: {describe(exc)}")
    except Exception as exc:
        plugin.log.exception("fulfilling request %s on %s failed", request.id, arr.name)
        return FulfilmentResult(
            False, f"Could not add {request.title} to {arr.name}: {type(exc).__name__}: {exc}"
        )
    if changed:
        # What is missing has changed: open dashboards hear of it now, not at the next poll.
        await pollers.refresh_wanted(plugin, arr, force=True)
    return result


def _required_id(arr: Arr, request: RequestInfo) -> int:
    scheme = ID_SCHEME[arr.kind]
    number = _number(request.ids, scheme)
    if number is None:
        raise Refusal(f"{request.title} has no {ID_NAMES[scheme]} id, which {arr.app} needs.")
    return number


async def _check_defaults(arr: Arr) -> dict[str, Any]:
    """The quality profile, root folder (and Sonarr 3's language profile) to add with, checked
    against what the instance has; a :class:`Refusal` saying what is missing."""
    settings = arr.settings
    where = f"in the settings of {arr.name} under Integrations"
    if settings.quality_profile_id is None:
        raise Refusal(f"{arr.name} has no quality profile chosen: choose one {where}.")
    if not settings.root_folder:
        raise Refusal(f"{arr.name} has no root folder chosen: choose one {where}.")
    profiles = await arr.quality_profiles(ttl=CHOICES_TTL)
    if settings.quality_profile_id not in {p.id for p in profiles}:
        await arr.forget("/qualityprofile")
        profiles = await arr.quality_profiles(ttl=CHOICES_TTL)
    if settings.quality_profile_id not in {p.id for p in profiles}:
        offered = ", ".join(f"{p.id} {p.name}" for p in profiles) or "none"
        raise Refusal(
            f"{arr.name} has no quality profile {settings.quality_profile_id}"
            f" (it has: {offered}); choose another {where}."
        )
    wanted = settings.root_folder.rstrip("/\\")
    folders = await arr.root_folders(ttl=CHOICES_TTL)
    if wanted not in {f.path.rstrip("/\\") for f in folders}:
        await arr.forget("/rootfolder")
        folders = await arr.root_folders(ttl=CHOICES_TTL)
    if wanted not in {f.path.rstrip("/\\") for f in folders}:
        offered = ", ".join(f.path for f in folders) or "none"
        raise Refusal(
            f"{arr.name} has no root folder {settings.root_folder} (it has: {offered});"
            f" choose another {where}."
        )
    chosen: dict[str, Any] = {
        "qualityProfileId": settings.quality_profile_id,
        "rootFolderPath": settings.root_folder,
    }
    if arr.is_sonarr and await arr.major() < 4:
        languages = await arr.language_profiles()
        language = settings.language_profile_id
        if language is None and languages:
            language = languages[0].id
        if language not in {p.id for p in languages}:
            raise Refusal(f"{arr.name} has no language profile {language}; choose another {where}.")
        chosen["languageProfileId"] = language
    return chosen


def movie_body(arr: Arr, found: MovieLookup, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """What Radarr is sent to add a film (``POST /api/v3/movie``)."""
    settings = arr.settings
    return {
        "title": found.title,
        "tmdbId": found.tmdb_id,
        "qualityProfileId": defaults["qualityProfileId"],
        "rootFolderPath": defaults["rootFolderPath"],
        "monitored": True,
        "minimumAvailability": settings.minimum_availability,
        "tags": list(settings.tags),
        "addOptions": {"searchForMovie": settings.search_on_add},
    }


def series_body(
    arr: Arr,
    found: SeriesLookup,
    defaults: Mapping[str, Any],
    seasons: set[int],
    *,
    anime: bool,
) -> dict[str, Any]:
    """What Sonarr is sent to add a series (``POST /api/v3/series``): exactly ``seasons``
    monitored (all but the specials when none were named)."""
    settings = arr.settings
    body: dict[str, Any] = {
        "title": found.title,
        "tvdbId": found.tvdb_id,
        "qualityProfileId": defaults["qualityProfileId"],
        "rootFolderPath": defaults["rootFolderPath"],
        "monitored": True,
        "seasonFolder": True,
        "seriesType": "anime" if anime else "standard",
        "tags": list(settings.tags),
        "seasons": [
            {
                "seasonNumber": s.season_number,
                "monitored": s.season_number in seasons if seasons else s.season_number > 0,
            }
            for s in found.seasons
        ],
        # "unknown": the seasons' own flags decide what is monitored, nothing else.
        "addOptions": {"searchForMissingEpisodes": settings.search_on_add, "monitor": "unknown"},
    }
    if "languageProfileId" in defaults:
        body["languageProfileId"] = defaults["languageProfileId"]
    return body


Outcome = tuple[FulfilmentResult, bool]


def _done(message: str, external_id: int | None) -> FulfilmentResult:
    return FulfilmentResult(True, message, str(external_id) if external_id is not None else None)


async def _fulfil_movie(arr: Arr, request: RequestInfo) -> Outcome:
    """The result, and whether the library changed."""
    tmdb_id = _required_id(arr, request)
    search = arr.settings.search_on_add
    searching = " and being searched for." if search else "."
    existing = await arr.movie(tmdb_id)
    if existing is not None:
        if existing.monitored or existing.has_file:
            return _done(f"{existing.title} is already in {arr.name}.", existing.id), False
        await arr.update_movie(existing, monitored=True)
        if search:
            await arr.command("MoviesSearch", movieIds=[existing.id])
        message = f"{existing.title} was in {arr.name} unmonitored; it is monitored now"
        return _done(message + searching, existing.id), True
    defaults = await _check_defaults(arr)
    found = await arr.lookup_movie(tmdb_id)
    if found is None:
        raise Refusal(f"{arr.name} found no film with TMDB id {tmdb_id}.")
    try:
        added = await arr.add_movie(movie_body(arr, found, defaults))
    except BadResponse as exc:
        # Added meanwhile (another process fulfilling the same request): nothing to do.
        if refused_as_duplicate(exc) and (again := await arr.movie(tmdb_id)) is not None:
            return _done(f"{again.title} is already in {arr.name}.", again.id), False
        raise
    message = f"{found.title} was added to {arr.name}"
    return _done(message + (" and is being searched for." if search else "."), added.id), True


async def _fulfil_series(arr: Arr, request: RequestInfo) -> Outcome:
    """The result, and whether the library changed."""
    tvdb_id = _required_id(arr, request)
    details = request.details or {}
    requested = _seasons(details)
    search = arr.settings.search_on_add
    existing = await arr.series(tvdb_id)
    if existing is not None:
        known = {s.season_number for s in existing.seasons}
        wanted = (requested & known) if requested else {n for n in known if n > 0}
        if requested and not wanted:
            raise Refusal(f"{existing.title} has no {_listed(requested)} in {arr.name}.")
        new = wanted - existing.monitored_seasons()
        if not new and existing.monitored:
            message = f"{existing.title} is already in {arr.name} with {_listed(wanted)} monitored."
            return _done(message, existing.id), False
        await arr.monitor_seasons(existing.id or 0, new)
        if search:
            await arr.command("SeriesSearch", seriesId=existing.id)
        message = f"{existing.title} is in {arr.name}; {_listed(new or wanted)} monitored now"
        return _done(message + (" and being searched for." if search else "."), existing.id), True
    defaults = await _check_defaults(arr)
    found = await arr.lookup_series(tvdb_id)
    if found is None:
        raise Refusal(f"{arr.name} found no series with TVDB id {tvdb_id}.")
    available = {s.season_number for s in found.seasons}
    if requested and not requested & available:
        raise Refusal(f"{found.title} has no {_listed(requested)} in {arr.name}.")
    anime = bool(details.get("is_anime")) or arr.settings.is_anime
    body = series_body(arr, found, defaults, requested & available, anime=anime)
    try:
        added = await arr.add_series(body)
    except BadResponse as exc:
        if refused_as_duplicate(exc) and (again := await arr.series(tvdb_id)) is not None:
            return _done(f"{again.title} is already in {arr.name}.", again.id), False
        raise
    monitored = [s["seasonNumber"] for s in body["seasons"] if s["monitored"]]
    message = f"{found.title} was added to {arr.name} with {_listed(monitored)} monitored"
    return _done(message + (" and is being searched for." if search else "."), added.id), True


# --- progress -------------------------------------------------------------------------------


async def progress(
    ids: Mapping[str, str], media_type: str, plugin: PluginContext
) -> list[Progress] | None:
    """The downloads of a requested film or series in every instance's queue (as the queue
    poller keeps it), as percent done, state and expected end; None when none is queued."""
    kind = KINDS_BY_MEDIA.get(media_type)
    if kind is None:
        return None
    scheme = ID_SCHEME[kind]
    wanted = _number(ids, scheme)
    candidates = instances(plugin, kind)
    if wanted is None or not candidates:
        return None
    queues = await asyncio.gather(*(pollers.QUEUE.latest(plugin, a) for a in candidates))
    found = []
    for arr, fetched in zip(candidates, queues, strict=True):
        for item in fetched.value.records if fetched.value is not None else ():
            ref = item.movie if kind == "radarr" else item.series
            number = None if ref is None else ref.tmdb_id if scheme == "tmdb" else ref.tvdb_id
            if number == wanted:
                found.append(
                    Progress(
                        percent=item.percent,
                        state=item.state,
                        eta=item.estimated_completion_time,
                        instance=arr.name,
                        title=item.name,
                    )
                )
    return found or None
