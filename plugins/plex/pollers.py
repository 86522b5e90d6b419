"""What the Plex widgets show, and the background refreshes that keep it fresh for every viewer.

One coordinator per widget reads through the service client every interval (a setting), with a
cache TTL equal to the interval, so however many people watch and however many MediaNest
processes run, the server is asked once per interval; the widgets' loaders show what their
coordinator read last. When what a widget shows changes, its coordinator announces it on the
widget's topic (once across processes) and open dashboards reload it. Events carry counts only:
whoever is subscribed learns no names.

After each of its rounds the recently-added coordinator also brings the availability index up to
date; a full scan rebuilds it every few hours (a setting too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from medianest import Coordinator, Fetched, PluginContext, Poller

from . import availability
from .client import ALBUM, ARTIST, EPISODE, MOVIE, SHOW, TRACK, NowPlaying, Plex, Server, connect
from .client import oldest as oldest_moment

# How often the full-scan poller looks whether a scan is due (none yet, the last one too old,
# the settings changed, the server's token just became known): a look at the cache.
SCAN_CHECK_INTERVAL = 60.0
# The list of libraries changes rarely; every reader shares one answer for this long.
SECTIONS_TTL = 60.0
# Items read from recently added (before leaving out unwatched libraries), and shown.
RECENT_SIZE = 30
RECENT_SHOWN = 12

STATUS_TOPIC = "plex.status"
SESSIONS_TOPIC = "plex.sessions"
RECENT_TOPIC = "plex.recent"
LIBRARIES_TOPIC = "plex.libraries"
AVAILABILITY_TOPIC = "plex.availability"
TOPICS = [STATUS_TOPIC, SESSIONS_TOPIC, RECENT_TOPIC, LIBRARIES_TOPIC, AVAILABILITY_TOPIC]

# What each kind of library counts, with Plex's type numbers.
COUNTED = {
    "movie": (("films", MOVIE),),
    "show": (("series", SHOW), ("episodes", EPISODE)),
    "artist": (("artists", ARTIST), ("albums", ALBUM), ("tracks", TRACK)),
}


def pollers() -> list[Poller]:
    # Read at start-up, so the interval above is what the poller uses. (The widgets' pollers
    # follow from their coordinators.)
    return [Poller("full-scan", SCAN_CHECK_INTERVAL, poll_full_scan)]


# --- what the widgets show ------------------------------------------------------------------


@dataclass(frozen=True)
class NotReady:
    """What a widget shows before MediaNest can talk to the server: ``missing`` is
    ``"address"`` or ``"token"``."""

    missing: str
    not_ready: bool = True


@dataclass(frozen=True)
class RecentItem:
    rating_key: str
    title: str
    detail: str
    year: int | None
    kind: str
    poster: str


@dataclass(frozen=True)
class Recent:
    items: tuple[RecentItem, ...]


@dataclass(frozen=True)
class LibraryCount:
    key: str
    title: str
    type: str
    # (what, how many) pairs: ("series", 3), ("episodes", 56); None when it could not be read.
    counts: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class Libraries:
    libraries: tuple[LibraryCount, ...]


async def ready(plugin: PluginContext) -> Plex | NotReady:
    plex = await connect(plugin)
    if plex is None:
        return NotReady("address")
    if not plex.has_token:
        return NotReady("token")
    return plex


@dataclass(frozen=True)
class ServerStatus:
    """The server as the status widget shows it; ``online`` is false when the last call
    failed (the rest is then the last good answer)."""

    name: str
    version: str
    platform: str
    online: bool


async def status(plugin: PluginContext, interval: float) -> Fetched[ServerStatus] | NotReady:
    plex = await ready(plugin)
    if isinstance(plex, NotReady):
        return plex
    got: Fetched[Server] = await plex.fetch_server(ttl=interval)
    if got.value is None:
        return Fetched(None, None, got.error)
    server = got.value
    platform = " ".join(p for p in (server.platform, server.platform_version) if p)
    shown = ServerStatus(server.name, server.version, platform, got.error is None)
    return Fetched(shown, got.fetched_at, got.error)


async def playing(plugin: PluginContext, interval: float) -> Fetched[NowPlaying] | NotReady:
    plex = await ready(plugin)
    if isinstance(plex, NotReady):
        return plex
    return await plex.fetch_now_playing(ttl=interval)


def poster_path(rating_key: str) -> str:
    return f"/plex/posters/{rating_key}"


async def recent(plugin: PluginContext, interval: float) -> Fetched[Recent] | NotReady:
    """The newest films, seasons and albums of the watched libraries."""
    plex = await ready(plugin)
    if isinstance(plex, NotReady):
        return plex
    sections = await plex.fetch_sections(ttl=SECTIONS_TTL)
    got = await plex.fetch_recently_added(RECENT_SIZE, ttl=interval)
    if sections.value is None or got.value is None:
        return Fetched(None, None, got.error or sections.error)
    watched = {s.key for s in plex.watched(sections.value)}
    shown = []
    for entry in got.value:
        if entry.section_key not in watched or entry.type not in ("movie", "season", "album"):
            continue
        if entry.type == "movie":
            title, detail, year, kind = entry.title, "", entry.year, "film"
        elif entry.type == "season":
            title, detail, kind = entry.parent_title or entry.title, entry.title, "series"
            year = entry.parent_year
        else:
            title, kind, year = entry.title, "album", entry.year
            detail = f"by {entry.parent_title}" if entry.parent_title else ""
        shown.append(
            RecentItem(entry.rating_key, title, detail, year, kind, poster_path(entry.rating_key))
        )
    return Fetched(
        Recent(tuple(shown[:RECENT_SHOWN])),
        oldest_moment(sections.fetched_at, got.fetched_at),
        got.error or sections.error,
    )


async def libraries(plugin: PluginContext, interval: float) -> Fetched[Libraries] | NotReady:
    """How much each watched library holds."""
    plex = await ready(plugin)
    if isinstance(plex, NotReady):
        return plex
    sections = await plex.fetch_sections(ttl=SECTIONS_TTL)
    if sections.value is None:
        return Fetched(None, None, sections.error)
    error, moment = sections.error, sections.fetched_at
    found = []
    for section in plex.watched(sections.value):
        counts: list[tuple[str, int | None]] = []
        for what, kind in COUNTED.get(section.type, ()):
            got = await plex.fetch_count(section.key, kind, ttl=interval)
            error = error or got.error
            moment = oldest_moment(moment, got.fetched_at)
            counts.append((what, got.value))
        found.append(LibraryCount(section.key, section.title, section.type, tuple(counts)))
    return Fetched(Libraries(tuple(found)), moment, error)


# --- the coordinators ----------------------------------------------------------------------


def _streams(data: Fetched[NowPlaying] | NotReady) -> dict[str, Any]:
    if isinstance(data, NotReady):
        return {"ok": False}
    return {"streams": data.value.count} if data.value is not None else {}


def _ready(data: Any) -> dict[str, Any]:
    # A server MediaNest cannot talk to yet is not "ok", though nothing failed.
    return {"ok": False} if isinstance(data, NotReady) else {}


async def _after_recent(plugin: PluginContext, interval: float) -> None:
    plex = await ready(plugin)
    if not isinstance(plex, NotReady):
        await _follow_recent(plugin, plex, interval)


STATUS: Coordinator[Fetched[ServerStatus] | NotReady] = Coordinator(
    "status",
    status,
    interval=lambda settings: settings.status_interval,
    topic=STATUS_TOPIC,
    summary=_ready,
)
SESSIONS: Coordinator[Fetched[NowPlaying] | NotReady] = Coordinator(
    "sessions",
    playing,
    interval=lambda settings: settings.sessions_interval,
    topic=SESSIONS_TOPIC,
    summary=_streams,
)
RECENT: Coordinator[Fetched[Recent] | NotReady] = Coordinator(
    "recent",
    recent,
    interval=lambda settings: settings.recent_interval,
    topic=RECENT_TOPIC,
    summary=_ready,
    after=_after_recent,
)
LIBRARIES: Coordinator[Fetched[Libraries] | NotReady] = Coordinator(
    "libraries",
    libraries,
    interval=lambda settings: settings.libraries_interval,
    topic=LIBRARIES_TOPIC,
    summary=_ready,
)
WIDGETS = (STATUS, SESSIONS, RECENT, LIBRARIES)


async def _follow_recent(plugin: PluginContext, plex: Plex, interval: float) -> None:
    """Bring the availability index up to date from the recently-added list (read already,
    so this costs a call only for what is new), once across processes."""
    key = availability.index_key(plex)
    index = await plugin.cache.get(key)
    got = await plex.fetch_recently_added(RECENT_SIZE, ttl=interval)
    sections = await plex.fetch_sections(ttl=SECTIONS_TTL)
    if index is None or got.error or sections.error or not got.value or not sections.value:
        return  # no full scan yet, or nothing fresh to go by
    seen = [(i.rating_key, i.leaf_count, i.added_at) for i in got.value]
    digest = hashlib.sha256(orjson.dumps([index["full_scan_at"], seen])).hexdigest()[:24]
    recent_items, all_sections = got.value, sections.value

    async def follow() -> dict[str, Any]:
        current = await plugin.cache.get(key) or index
        if await availability.apply_recent(plex, current, recent_items, all_sections):
            await plugin.cache.set(key, current, availability.KEEP_SECONDS)
            await _announce_index(plugin, current)
        return {"done": True}

    await plugin.cache.get_or_compute(
        f"plex:availability-recent:{digest}", _full_scan_interval(plugin), follow
    )


async def poll_full_scan(plugin: PluginContext) -> None:
    plex = await ready(plugin)
    if isinstance(plex, NotReady):
        return

    async def scan() -> dict[str, Any]:
        index = await availability.full_scan(plex)
        await plugin.cache.set(availability.index_key(plex), index, availability.KEEP_SECONDS)
        await _announce_index(plugin, index)
        return {"scanned_at": index["scanned_at"]}

    # Once per interval, whichever process gets there first; at once when the index is gone.
    marker = f"plex:full-scan:{availability.fingerprint(plex)}"
    if await plugin.cache.get(availability.index_key(plex)) is None:
        await plugin.cache.delete(marker)
    await plugin.cache.get_or_compute(marker, _full_scan_interval(plugin), scan)


def _full_scan_interval(plugin: PluginContext) -> float:
    return float(plugin.settings.full_scan_interval)


async def _announce_index(plugin: PluginContext, index: Mapping[str, Any]) -> None:
    await plugin.publish(
        AVAILABILITY_TOPIC,
        "updated",
        {"movies": len(index["movies"]), "shows": len(index["shows"])},
    )
    # Requests waiting for what just arrived are checked now, not at their next round.
    await plugin.media_changed()


async def server_token_changed(plugin: PluginContext) -> None:
    """Tell open dashboards (and the widgets' shared views) that the server's token changed."""
    for coordinator in WIDGETS:
        await coordinator.forget(plugin)
        await plugin.publish(coordinator.topic_of(plugin.name), "updated", {"ok": True})
