"""Every call MediaNest makes to the Plex Media Server, and the dataclasses its answers become.

Calls go through MediaNest's service client (timeouts, retries, breaker, shared cache). The
server answers JSON because every call says ``Accept: application/json``; the token travels in
the ``X-Plex-Token`` header (never in a URL, so it reaches no log and no cache key), with the
``X-Plex-*`` headers that name this installation.

The token is the one in the settings or, when that is blank, the one kept from the server
owner's own "Sign in with Plex".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medianest import BadResponse, Fetched, PluginContext, ServiceClient

from .plextv import client_headers
from .settings import Settings

SERVICE = "plex"
INSTANCE = "default"
LABEL = "Plex"
# Items read per request when going through a whole library.
PAGE_SIZE = 500
# How long the owner's token, read from the database, is used before it is read again.
OWNER_TOKEN_SECONDS = 60.0
# Where a server's library items live, in the ``server://`` URIs that name items.
LIBRARY_IDENTIFIER = "com.plexapp.plugins.library"

# Plex's numbers for the kinds of items (the ``type`` query parameter).
MOVIE, SHOW, SEASON, EPISODE, ARTIST, ALBUM, TRACK = 1, 2, 3, 4, 8, 9, 10
# The kinds of library MediaNest shows.
LIBRARY_TYPES = ("movie", "show", "artist")
# What a Plex GUID's scheme is called in MediaNest: new agents write ``tmdb://603``, the old
# ones ``com.plexapp.agents.themoviedb://603?lang=en``.
GUID_SCHEMES = {
    "tmdb": "tmdb",
    "tvdb": "tvdb",
    "imdb": "imdb",
    "themoviedb": "tmdb",
    "thetvdb": "tvdb",
}


# --- what the server says -----------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    machine_id: str
    version: str


@dataclass(frozen=True)
class Server:
    """The server's own description (``GET /``)."""

    name: str
    version: str
    machine_id: str
    platform: str = ""
    platform_version: str = ""


@dataclass(frozen=True)
class Section:
    """A library: ``type`` is ``movie``, ``show``, ``artist``..., ``locations`` its folders."""

    key: str
    title: str
    type: str
    locations: tuple[str, ...] = ()

    def holds(self, path: str) -> int:
        """How closely this library holds ``path``: the length of its folder that contains
        it (the longest wins), or 0 when none does."""
        wanted = _folder(path)
        best = 0
        for location in self.locations:
            folder = _folder(location)
            if wanted == folder or wanted.startswith(folder.rstrip("/") + "/"):
                best = max(best, len(folder))
        return best


@dataclass(frozen=True)
class Item:
    """A film, show, season, episode, album... as listed by the server."""

    rating_key: str
    type: str
    title: str
    year: int | None = None
    index: int | None = None
    parent_key: str | None = None
    grandparent_key: str | None = None
    parent_title: str | None = None
    grandparent_title: str | None = None
    parent_index: int | None = None
    parent_year: int | None = None
    leaf_count: int | None = None
    section_key: str | None = None
    thumb: str | None = None
    added_at: int | None = None
    summary: str = ""
    guids: Mapping[str, str] = field(default_factory=dict)
    # The files of its Media/Part children (films, episodes and tracks have them).
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stream:
    """Somebody playing something now."""

    session_key: str
    user: str
    title: str
    type: str
    progress: int
    state: str
    decision: str
    player: str

    @property
    def transcoding(self) -> bool:
        return self.decision == "Transcode"


@dataclass(frozen=True)
class NowPlaying:
    """What the server is playing. ``detailed`` is false for people who may only see the
    count."""

    count: int
    transcodes: int
    streams: tuple[Stream, ...] = ()
    detailed: bool = True

    def count_only(self) -> NowPlaying:
        return NowPlaying(count=self.count, transcodes=0, streams=(), detailed=False)


# --- parsing --------------------------------------------------------------------------------


def _folder(path: str) -> str:
    return path.replace("\\", "/").rstrip("/") or "/"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def container(body: Any) -> dict[str, Any]:
    """The ``MediaContainer`` of an answer; :class:`BadResponse` if it has none."""
    if isinstance(body, dict) and isinstance(body.get("MediaContainer"), dict):
        return body["MediaContainer"]
    raise BadResponse(LABEL, "not an answer of a Plex Media Server")


def _list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def guids(raw: Mapping[str, Any]) -> dict[str, str]:
    """The external ids of an item, from its ``Guid`` children (and the old agents' ``guid``)."""
    found: dict[str, str] = {}
    candidates = [g.get("id") for g in _list(raw.get("Guid"))]
    candidates.append(raw.get("guid"))
    for value in candidates:
        if not isinstance(value, str) or "://" not in value:
            continue
        scheme, _, rest = value.partition("://")
        name = GUID_SCHEMES.get(scheme.rsplit(".", 1)[-1])
        ident = rest.split("?", 1)[0].split("/", 1)[0]
        if name and ident and name not in found:
            found[name] = ident
    return found


def item(raw: Mapping[str, Any]) -> Item:
    return Item(
        rating_key=str(raw.get("ratingKey", "")),
        type=str(raw.get("type", "")),
        title=str(raw.get("title", "")),
        year=_int(raw.get("year")),
        index=_int(raw.get("index")),
        parent_key=_str(raw.get("parentRatingKey")),
        grandparent_key=_str(raw.get("grandparentRatingKey")),
        parent_title=_str(raw.get("parentTitle")),
        grandparent_title=_str(raw.get("grandparentTitle")),
        parent_index=_int(raw.get("parentIndex")),
        parent_year=_int(raw.get("parentYear")),
        leaf_count=_int(raw.get("leafCount")),
        section_key=_str(raw.get("librarySectionID")),
        thumb=_str(raw.get("thumb")),
        added_at=_int(raw.get("addedAt")),
        summary=str(raw.get("summary") or ""),
        guids=guids(raw),
        files=tuple(
            str(part["file"])
            for media in _list(raw.get("Media"))
            for part in _list(media.get("Part"))
            if part.get("file")
        ),
    )


def items(body: Any) -> list[Item]:
    return [item(raw) for raw in _list(container(body).get("Metadata")) if raw.get("ratingKey")]


def sections(body: Any) -> list[Section]:
    return [
        Section(
            key=str(raw.get("key", "")),
            title=str(raw.get("title", "")),
            type=str(raw.get("type", "")),
            locations=tuple(
                str(loc["path"]) for loc in _list(raw.get("Location")) if loc.get("path")
            ),
        )
        for raw in _list(container(body).get("Directory"))
    ]


def server(body: Any) -> Server:
    c = container(body)
    return Server(
        name=str(c.get("friendlyName") or "Plex Media Server"),
        version=str(c.get("version") or ""),
        machine_id=str(c.get("machineIdentifier") or ""),
        platform=str(c.get("platform") or ""),
        platform_version=str(c.get("platformVersion") or ""),
    )


def _stream_title(raw: Mapping[str, Any]) -> str:
    title = str(raw.get("title", ""))
    if raw.get("type") == "episode":
        season, episode = _int(raw.get("parentIndex")), _int(raw.get("index"))
        number = f"S{season:02d}E{episode:02d} · " if season is not None and episode else ""
        return f"{raw.get('grandparentTitle', '')} · {number}{title}"
    if raw.get("type") == "track":
        return f"{raw.get('grandparentTitle', '')} · {title}"
    year = _int(raw.get("year"))
    return f"{title} ({year})" if year else title


def _decision(raw: Mapping[str, Any]) -> str:
    transcode = raw.get("TranscodeSession")
    if isinstance(transcode, dict):
        decisions = {transcode.get("videoDecision"), transcode.get("audioDecision")}
        return "Transcode" if "transcode" in decisions else "Direct stream"
    return "Direct play"


def now_playing(body: Any) -> NowPlaying:
    streams = []
    for raw in _list(container(body).get("Metadata")):
        user: dict[str, Any] = next(iter(_list(raw.get("User"))), {})
        player: dict[str, Any] = next(iter(_list(raw.get("Player"))), {})
        duration, offset = _int(raw.get("duration")), _int(raw.get("viewOffset")) or 0
        progress = round(100 * offset / duration) if duration else 0
        streams.append(
            Stream(
                session_key=str(raw.get("sessionKey", "")),
                user=str(user.get("title") or "Someone"),
                title=_stream_title(raw),
                type=str(raw.get("type", "")),
                progress=max(0, min(progress, 100)),
                state=str(player.get("state") or "playing"),
                decision=_decision(raw),
                player=str(player.get("title") or player.get("product") or ""),
            )
        )
    return NowPlaying(
        count=len(streams),
        transcodes=sum(1 for s in streams if s.transcoding),
        streams=tuple(streams),
    )


def parsed(fetched: Fetched[Any], parse: Any) -> Fetched[Any]:
    """``fetched`` with its raw answer parsed; an answer that does not parse is an error."""
    if fetched.value is None:
        return fetched
    try:
        return Fetched(parse(fetched.value), fetched.fetched_at, fetched.error)
    except BadResponse as exc:
        return Fetched(None, None, exc)


# --- the client -----------------------------------------------------------------------------


def headers(plugin: PluginContext, token: str | None) -> dict[str, str]:
    sent = client_headers(plugin.installation_id)
    if token:
        sent["X-Plex-Token"] = token
    return sent


async def token_for(
    plugin: PluginContext, settings: Settings, *, fresh: bool = False
) -> tuple[str | None, str]:
    """The token to use and where it comes from: ``"settings"``, ``"sign-in"`` (the server
    owner's own sign-in with Plex) or ``"none"``."""
    own = settings.own_token
    if own:
        return own, "settings"
    kept = plugin.state.get("owner-token")
    if not fresh and kept is not None and kept[0] > time.monotonic():
        return kept[1], "sign-in"
    token = await plugin.sign_in_secret("plex", access="owner")
    if token is None:
        # Not kept: the owner's first sign-in is used at once.
        return None, "none"
    plugin.state["owner-token"] = (time.monotonic() + OWNER_TOKEN_SECONDS, token)
    return token, "sign-in"


class Plex:
    """The calls to one Plex Media Server."""

    def __init__(self, http: ServiceClient, settings: Settings, token_source: str) -> None:
        self.http = http
        self.settings = settings
        self.token_source = token_source

    @property
    def has_token(self) -> bool:
        return self.token_source != "none"

    # --- the server ---------------------------------------------------------------------

    async def identity(self) -> Identity:
        """``GET /identity``: answered without a token, so it says only that the server is
        there, and its version."""
        c = container(await self.http.get("/identity"))
        return Identity(str(c.get("machineIdentifier") or ""), str(c.get("version") or ""))

    async def server(self, ttl: float | None = None) -> Server:
        return server(await self.http.get("/", ttl=ttl))

    async def fetch_server(self, ttl: float) -> Fetched[Server]:
        return parsed(await self.http.fetch("/", ttl=ttl), server)

    # --- libraries ----------------------------------------------------------------------

    async def sections(self, ttl: float | None = None) -> list[Section]:
        return sections(await self.http.get("/library/sections", ttl=ttl))

    async def fetch_sections(self, ttl: float) -> Fetched[list[Section]]:
        return parsed(await self.http.fetch("/library/sections", ttl=ttl), sections)

    def watched(self, all_sections: Iterable[Section]) -> list[Section]:
        """The libraries the settings name (all of the kinds MediaNest shows when none)."""
        wanted = self.settings.libraries
        shown = [s for s in all_sections if s.type in LIBRARY_TYPES]
        if not wanted:
            return shown
        names = {w.casefold() for w in wanted}
        return [s for s in shown if s.key in wanted or s.title.casefold() in names]

    async def section_items(
        self, key: str, kind: int | None = None, *, with_guids: bool = False
    ) -> list[Item]:
        """Every item of a library (of one ``kind``: films, shows, seasons...), page by page."""
        found: list[Item] = []
        start = 0
        while True:
            params: dict[str, Any] = {
                "X-Plex-Container-Start": start,
                "X-Plex-Container-Size": PAGE_SIZE,
            }
            if kind is not None:
                params["type"] = kind
            if with_guids:
                params["includeGuids"] = 1
            body = await self.http.get(f"/library/sections/{key}/all", params=params)
            page = items(body)
            found.extend(page)
            total = _int(container(body).get("totalSize"))
            start += len(page)
            if not page or len(page) < PAGE_SIZE or (total is not None and start >= total):
                return found

    async def fetch_count(self, key: str, kind: int, ttl: float) -> Fetched[int]:
        """How many items of ``kind`` a library holds (a page of none, and its total)."""
        fetched = await self.http.fetch(
            f"/library/sections/{key}/all",
            params={"type": kind, "X-Plex-Container-Start": 0, "X-Plex-Container-Size": 0},
            ttl=ttl,
        )

        def total(body: Any) -> int:
            c = container(body)
            count = _int(c.get("totalSize"))
            return count if count is not None else _int(c.get("size")) or 0

        return parsed(fetched, total)

    async def metadata(self, keys: Sequence[str]) -> list[Item]:
        """Items with their external ids, several in one call (``/library/metadata/1,2,3``)."""
        if not keys:
            return []
        return items(await self.http.get(f"/library/metadata/{','.join(keys)}"))

    async def children(self, key: str) -> list[Item]:
        """The seasons of a show (the episodes of a season...)."""
        return items(await self.http.get(f"/library/metadata/{key}/children"))

    async def fetch_recently_added(self, size: int, ttl: float) -> Fetched[list[Item]]:
        params = {"X-Plex-Container-Start": 0, "X-Plex-Container-Size": size}
        return parsed(
            await self.http.fetch("/library/recentlyAdded", params=params, ttl=ttl), items
        )

    async def search(self, query: str, limit: int, ttl: float) -> list[Item]:
        """``GET /hubs/search``: matches of every kind, one hub per kind."""
        body = await self.http.get("/hubs/search", params={"query": query, "limit": limit}, ttl=ttl)
        return [
            item(raw)
            for hub in _list(container(body).get("Hub"))
            for raw in _list(hub.get("Metadata"))
            if raw.get("ratingKey")
        ]

    async def refresh(self, key: str, path: str | None = None) -> None:
        """Scan one library for new files (only ``path`` in it, when given)."""
        params = {"path": path} if path else None
        await self.http.request(
            "GET", f"/library/sections/{key}/refresh", params=params, parse="none"
        )

    async def newest(self, key: str, kind: int, count: int) -> list[Item]:
        """The ``count`` items of ``kind`` a library added last, newest first."""
        params = {
            "type": kind,
            "sort": "addedAt:desc",
            "X-Plex-Container-Start": 0,
            "X-Plex-Container-Size": count,
        }
        return items(await self.http.get(f"/library/sections/{key}/all", params=params))

    # --- collections --------------------------------------------------------------------

    @staticmethod
    def items_uri(machine_id: str, rating_keys: Sequence[str]) -> str:
        """How Plex names items of its library in a collection request."""
        keys = ",".join(rating_keys)
        return f"server://{machine_id}/{LIBRARY_IDENTIFIER}/library/metadata/{keys}"

    async def collections(self, key: str) -> list[Item]:
        """The collections of a library."""
        return items(await self.http.get(f"/library/sections/{key}/collections"))

    async def create_collection(self, key: str, title: str, kind: int, uri: str) -> Item | None:
        """A new (not smart) collection in library ``key`` holding the items ``uri`` names."""
        params = {"type": kind, "title": title, "smart": 0, "sectionId": key, "uri": uri}
        made = items(await self.http.request("POST", "/library/collections", params=params))
        return made[0] if made else None

    async def add_to_collection(self, rating_key: str, uri: str) -> None:
        """Add the items ``uri`` names to a collection (those already in it stay once)."""
        await self.http.request(
            "PUT", f"/library/collections/{rating_key}/items", params={"uri": uri}
        )

    # --- now playing and posters --------------------------------------------------------

    async def fetch_now_playing(self, ttl: float) -> Fetched[NowPlaying]:
        return parsed(await self.http.fetch("/status/sessions", ttl=ttl), now_playing)

    async def poster(self, rating_key: str, width: int, height: int) -> bytes:
        """An item's poster, scaled by the server."""
        params = {
            "url": f"/library/metadata/{rating_key}/thumb",
            "width": width,
            "height": height,
            "minSize": 1,
            "upscale": 1,
        }
        body: bytes = await self.http.request(
            "GET", "/photo/:/transcode", params=params, parse="bytes"
        )
        return body


async def connect(plugin: PluginContext) -> Plex | None:
    """The client for the configured server; ``None`` before a server address is set."""
    settings: Settings = plugin.settings
    if settings.url is None:
        return None
    token, source = await token_for(plugin, settings)
    http = plugin.service_client(
        SERVICE, INSTANCE, str(settings.url), headers=headers(plugin, token), label=LABEL
    )
    return Plex(http, settings, source)


def oldest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None
