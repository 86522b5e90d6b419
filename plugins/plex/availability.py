"""What is in Plex, by TMDB, TVDB and IMDb id: the index behind ``check_availability``.

A full scan reads every watched film and series library (films and shows with their ``Guid``
children, then every season with its episode count: two paged calls per library, not one per
show). Between full scans, the recently-added list the dashboard reads anyway is enough to
keep the index current: a new film, a new season or a season with more episodes is read (a
few calls for just those items). The index lives in the shared cache, so every MediaNest
process answers from the same scan.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from medianest import Availability, PluginContext, SeasonAvailability

from .client import LABEL, MOVIE, SEASON, SHOW, Item, Plex, Section

# How long an index is kept without a new full scan (several full-scan intervals).
KEEP_SECONDS = 7 * 86400.0
MEDIA_TYPES = {"movie": "movies", "tv": "shows"}


def fingerprint(plex: Plex) -> str:
    """What the index depends on: the server's address and the libraries watched."""
    settings = plex.settings
    basis = f"{settings.url}\n{sorted(w.casefold() for w in settings.libraries)}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def index_key(plex: Plex) -> str:
    return f"plex:availability:{fingerprint(plex)}"


def _entry(item: Item, section: str | None) -> dict[str, Any]:
    return {"title": item.title, "year": item.year, "ids": dict(item.guids), "section": section}


def _scannable(all_sections: Iterable[Section], plex: Plex) -> list[Section]:
    return [s for s in plex.watched(all_sections) if s.type in ("movie", "show")]


async def full_scan(plex: Plex) -> dict[str, Any]:
    """Read every watched film and series library; the new index."""
    server = await plex.server()
    movies: dict[str, Any] = {}
    shows: dict[str, Any] = {}
    for section in _scannable(await plex.sections(), plex):
        if section.type == "movie":
            for film in await plex.section_items(section.key, MOVIE, with_guids=True):
                movies[film.rating_key] = _entry(film, section.key)
            continue
        found = {
            show.rating_key: _entry(show, section.key) | {"seasons": {}}
            for show in await plex.section_items(section.key, SHOW, with_guids=True)
        }
        for season in await plex.section_items(section.key, SEASON):
            show_entry = found.get(season.parent_key or "")
            if show_entry is not None and season.index is not None:
                count = season.leaf_count or 0
                show_entry["seasons"][str(season.index)] = [count, count]
        shows |= found
    now = datetime.now(UTC).isoformat()
    return {
        "version": uuid.uuid4().hex,
        "server": {"id": server.machine_id, "name": server.name},
        "scanned_at": now,
        "full_scan_at": now,
        "movies": movies,
        "shows": shows,
    }


async def apply_recent(
    plex: Plex, index: dict[str, Any], recent: Iterable[Item], all_sections: Iterable[Section]
) -> bool:
    """Bring ``index`` up to date with the recently-added list; whether anything changed."""
    sections = {s.key for s in _scannable(all_sections, plex)}
    movies: dict[str, Any] = index["movies"]
    shows: dict[str, Any] = index["shows"]
    new_movies: list[str] = []
    reread_shows: set[str] = set()
    changed = False
    for entry in recent:
        if entry.section_key not in sections:
            continue
        if entry.type == "movie" and entry.rating_key not in movies:
            new_movies.append(entry.rating_key)
        elif entry.type == "season" and entry.parent_key:
            show = shows.get(entry.parent_key)
            count = entry.leaf_count or 0
            if show is None or entry.index is None:
                reread_shows.add(entry.parent_key)
            elif show["seasons"].get(str(entry.index)) != [count, count]:
                show["seasons"][str(entry.index)] = [count, count]
                changed = True
        elif entry.type == "episode" and entry.grandparent_key:
            reread_shows.add(entry.grandparent_key)
        elif entry.type == "show" and entry.rating_key not in shows:
            reread_shows.add(entry.rating_key)
    unknown_shows = [key for key in reread_shows if key not in shows]
    for found in await plex.metadata([*new_movies, *unknown_shows]):
        if found.type == "movie":
            movies[found.rating_key] = _entry(found, found.section_key)
        elif found.type == "show":
            shows[found.rating_key] = _entry(found, found.section_key) | {"seasons": {}}
        changed = True
    for key in reread_shows:
        if key not in shows:
            continue
        seasons = {
            str(s.index): [s.leaf_count or 0, s.leaf_count or 0]
            for s in await plex.children(key)
            if s.type == "season" and s.index is not None
        }
        if seasons != shows[key]["seasons"]:
            shows[key]["seasons"] = seasons
            changed = True
    if changed:
        index["version"] = uuid.uuid4().hex
    index["scanned_at"] = datetime.now(UTC).isoformat()
    return changed


def _lookup(plugin: PluginContext, index: Mapping[str, Any]) -> dict[str, str]:
    """``"movies:tmdb:603"`` → rating key, built once per version of the index."""
    kept = plugin.state.get("availability-lookup")
    if kept is not None and kept[0] == index["version"]:
        table: dict[str, str] = kept[1]
        return table
    table = {}
    for kind in MEDIA_TYPES.values():
        for key, entry in index[kind].items():
            for scheme, ident in entry["ids"].items():
                table.setdefault(f"{kind}:{scheme}:{ident}", key)
    plugin.state["availability-lookup"] = (index["version"], table)
    return table


def answer(
    plugin: PluginContext, index: Mapping[str, Any], ids: Mapping[str, Any], media_type: str
) -> Availability | None:
    kind = MEDIA_TYPES.get(media_type)
    if kind is None:
        return None
    wanted = {str(k).lower(): str(v).strip() for k, v in ids.items() if v not in (None, "")}
    if not wanted:
        return None
    table = _lookup(plugin, index)
    key = next(
        (table[f"{kind}:{s}:{i}"] for s, i in wanted.items() if f"{kind}:{s}:{i}" in table),
        None,
    )
    server = index["server"]
    checked = datetime.fromisoformat(index["scanned_at"])
    base = {
        "source": plugin.name,
        "server_id": server["id"],
        "server_name": server["name"],
        # What pages call it: "Available in Plex".
        "service": LABEL,
        "media_type": media_type,
        "checked_at": checked,
    }
    if key is None:
        return Availability(available=False, **base)
    entry = index[kind][key]
    seasons = {
        int(number): SeasonAvailability(present, known)
        for number, (present, known) in sorted(
            entry.get("seasons", {}).items(), key=lambda pair: int(pair[0])
        )
    }
    available = kind == "movies" or any(s.present for s in seasons.values())
    return Availability(
        available=available,
        seasons=seasons,
        title=entry["title"],
        year=entry["year"],
        key=key,
        **base,
    )
