"""A fake Plex Media Server that answers the calls MediaNest makes, as a real server answers them.

Served (every path but ``/identity`` needs a valid ``X-Plex-Token``, as a header or a query
parameter; any other token gets Plex's HTML 401):

- ``GET /identity`` and ``GET /``: who the server is and what it can do.
- ``GET /library/sections``: the libraries, with their ``Location`` folders.
- ``GET /library/sections/{key}/all``: a library's items (``type``, ``title``, ``year``, ``sort``,
  ``includeGuids=1`` for the ``Guid`` children, ``X-Plex-Container-Start``/``-Size`` paging).
- ``GET /library/metadata/{ratingKey}`` (with ``Guid`` children) and ``.../children``.
- ``GET /library/recentlyAdded``: films, seasons and albums, newest first, paged.
- ``GET /hubs/search?query=&limit=``: one ``Hub`` per kind of item.
- ``GET /status/sessions``: who is playing what, how far, direct play or transcode.
- ``GET /library/sections/{key}/refresh`` (``path=`` for one folder): recorded in ``refreshes``;
  in a film library whose folder is a real one on disk (an "Other Videos" library, say), the
  scan adds a film per video file it has not seen, as Plex does (after ``scan_delay`` seconds,
  as a real scan runs after the answer).
- ``GET /library/sections/{key}/collections``, ``POST /library/collections`` (``type``, ``title``,
  ``smart``, ``sectionId``, ``uri``), ``GET``/``PUT /library/collections/{id}/items`` (``uri``):
  a library's collections, made and filled by ``server://`` URIs as Plex takes them; the requests
  are recorded in ``collection_requests``.
- ``GET /photo/:/transcode`` and ``GET /library/metadata/{ratingKey}/thumb``: grey posters.

Answers are XML unless the client sends ``Accept: application/json``; the JSON form follows Plex's
(items under ``Metadata``, ``User``/``Player``/``Session``/``TranscodeSession`` as objects, other
children as arrays named after their element). The server starts with a small realistic library
(``seed=False`` for an empty one); tests add to it with :meth:`FakePlexMediaServer.add_movie`,
:meth:`~FakePlexMediaServer.add_show`, :meth:`~FakePlexMediaServer.add_season` and
:meth:`~FakePlexMediaServer.add_album`, and play things with
:meth:`~FakePlexMediaServer.start_session`.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import itertools
import os
import re
import secrets
import struct
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .base import FakeServer

_UNAUTHORISED = (
    "<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
)
_NOT_FOUND = "<html><head><title>Not Found</title></head><body><h1>404 Not Found</h1></body></html>"
_BAD_REQUEST = (
    "<html><head><title>Bad Request</title></head><body><h1>400 Bad Request</h1></body></html>"
)

# When the seeded library was last scanned; seeded items were added before it.
EPOCH = 1718000000
LIBRARY_IDENTIFIER = "com.plexapp.plugins.library"
MEDIA_TAG_PREFIX = "/system/bundle/media/flags/"

# Plex's numeric item types (the ``type`` query parameter) and the XML element of each type.
TYPE_NUMBERS = {
    "movie": 1,
    "show": 2,
    "season": 3,
    "episode": 4,
    "artist": 8,
    "album": 9,
    "track": 10,
}
_ELEMENTS = {
    "movie": "Video",
    "episode": "Video",
    "show": "Directory",
    "season": "Directory",
    "artist": "Directory",
    "album": "Directory",
    "track": "Track",
}
# What each kind of library holds at its top level, and how it is set up by default.
_LIBRARY_KINDS = {
    "movie": ("tv.plex.agents.movie", "Plex Movie", "/data/movies"),
    "show": ("tv.plex.agents.series", "Plex TV Series", "/data/tv"),
    "artist": ("tv.plex.agents.music", "Plex Music", "/data/music"),
}
# The agent and scanner of a film library of personal videos ("Other Videos").
OTHER_VIDEOS = ("tv.plex.agents.none", "Plex Video Files Scanner")
# What a scan takes for a video file.
VIDEO_SUFFIXES = {".mp4", ".mkv", ".m4v", ".mov", ".avi", ".webm", ".ts", ".wmv"}
# How items are named in a collection request: server://<machine>/<library>/library/metadata/1,2
_ITEMS_URI = re.compile(
    r"^server://(?P<machine>[^/]+)/"
    + re.escape("com.plexapp.plugins.library")
    + r"/library/metadata/(?P<keys>[^/?]+)$"
)
_HUBS = (
    ("movie", "Movies"),
    ("show", "Shows"),
    ("season", "Seasons"),
    ("episode", "Episodes"),
    ("artist", "Artists"),
    ("album", "Albums"),
    ("track", "Tracks"),
)


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _xml_value(v: Any) -> str:
    return ("1" if v else "0") if isinstance(v, bool) else html.escape(str(v), quote=True)


def _xml(tag: str, attributes: dict[str, Any]) -> str:
    attrs = " ".join(f'{k}="{_xml_value(v)}"' for k, v in attributes.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag} {attrs}>\n</{tag}>\n'


def _digest(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()


def _number(*parts: object, below: int = 100000) -> int:
    return int(_digest(*parts)[:12], 16) % below


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _title_sort(title: str) -> str | None:
    """Plex sorts without a leading article and says so only when that changes the title."""
    stripped = re.sub(r"^(the|a|an)\s+", "", title, flags=re.IGNORECASE)
    return stripped if stripped != title else None


@dataclass
class _Node:
    """One element of an answer: an XML element, or an object in the JSON form."""

    tag: str
    attrs: dict[str, Any]
    children: list[_Node] = field(default_factory=list)
    json_key: str | None = None  # where the JSON form puts it, when not under its tag
    single: bool = False  # an object in JSON rather than an array of them

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.attrs.items() if v is not None}
        for child in self.children:
            key = child.json_key or child.tag
            if child.single:
                out[key] = child.to_json()
            else:
                out.setdefault(key, []).append(child.to_json())
        return out

    def to_xml(self, depth: int = 0) -> str:
        pad = "  " * depth
        attrs = "".join(f' {k}="{_xml_value(v)}"' for k, v in self.attrs.items() if v is not None)
        if not self.children:
            return f"{pad}<{self.tag}{attrs} />\n"
        inner = "".join(child.to_xml(depth + 1) for child in self.children)
        return f"{pad}<{self.tag}{attrs}>\n{inner}{pad}</{self.tag}>\n"


def _answer(
    request: web.Request, container: _Node, headers: Mapping[str, str] = {}
) -> web.Response:
    sent = {"X-Plex-Protocol": "1.0", **headers}
    if _wants_json(request):
        return web.json_response({"MediaContainer": container.to_json()}, headers=sent)
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + container.to_xml()
    return web.Response(text=body, content_type="text/xml", charset="utf-8", headers=sent)


def _html(status: int, text: str) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=text)


def _grey_jpeg(width: int, height: int) -> bytes:
    """A baseline greyscale JPEG, mid-grey all over: every 8x8 block is coded in two bits."""

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    one_code = bytes([1] + [0] * 15)  # a Huffman table with one code of length 1
    bits = 2 * ((width + 7) // 8) * ((height + 7) // 8)  # "DC unchanged" + "end of block"
    scan = bytes(bits // 8) + (bytes([0xFF >> (bits % 8)]) if bits % 8 else b"")
    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + segment(0xDB, b"\x00" + b"\x01" * 64)
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\x00")
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


def _grey_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = (b"\x00" + b"\x80" * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass(eq=False)
class PlexLibrary:
    """A library section: ``type`` is ``movie``, ``show`` or ``artist``."""

    key: str
    title: str
    type: str
    agent: str
    scanner: str
    locations: list[str]
    language: str = "en-US"
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: int = EPOCH - 86400 * 400
    scanned_at: int = EPOCH

    @property
    def location(self) -> str:
        return self.locations[0]


@dataclass(eq=False)
class PlexItem:
    """A film, show, season, episode, artist, album or track in a library.

    ``guids`` are the external ids (``imdb://tt0133093``, ``tmdb://603``, ``tvdb://81189``);
    ``duration`` is in milliseconds; ``index`` numbers seasons, episodes and tracks.
    """

    rating_key: str
    type: str
    title: str
    library: PlexLibrary = field(repr=False)
    year: int | None = None
    index: int | None = None
    parent: PlexItem | None = field(default=None, repr=False)
    children: list[PlexItem] = field(default_factory=list, repr=False)
    guids: list[str] = field(default_factory=list)
    summary: str = ""
    tagline: str | None = None
    studio: str | None = None
    content_rating: str | None = None
    rating: float | None = None
    audience_rating: float | None = None
    duration: int | None = None
    originally_available_at: str | None = None
    genres: list[str] = field(default_factory=list)
    directors: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    locked_fields: list[str] = field(default_factory=list)
    added_at: int = EPOCH
    updated_at: int | None = None
    file: str | None = None

    @property
    def guid(self) -> str:
        """Plex's own id of the item (``plex://movie/…``)."""
        lineage = [self.title, self.year, self.index]
        parent = self.parent
        while parent is not None:
            lineage += [parent.title, parent.year, parent.index]
            parent = parent.parent
        return f"plex://{self.type}/{_digest(self.type, *lineage)[:24]}"

    @property
    def key(self) -> str:
        base = f"/library/metadata/{self.rating_key}"
        return base + "/children" if self.type in ("show", "season", "artist", "album") else base

    @property
    def thumb(self) -> str:
        return f"/library/metadata/{self.rating_key}/thumb/{self.updated_at or self.added_at}"

    @property
    def art(self) -> str:
        top = self.top
        return f"/library/metadata/{top.rating_key}/art/{top.updated_at or top.added_at}"

    @property
    def top(self) -> PlexItem:
        return self.parent.top if self.parent is not None else self

    def leaves(self) -> list[PlexItem]:
        """The playable items under this one (episodes of a show, tracks of an album)."""
        if not self.children:
            return [self] if self.type in ("movie", "episode", "track") else []
        return [leaf for child in self.children for leaf in child.leaves()]

    def external_id(self, scheme: str) -> str | None:
        prefix = scheme + "://"
        return next((g[len(prefix) :] for g in self.guids if g.startswith(prefix)), None)


@dataclass(eq=False)
class PlexCollection:
    """A collection of a library: ``subtype`` is the type of what it holds (``movie``...)."""

    rating_key: str
    title: str
    library: PlexLibrary = field(repr=False)
    subtype: str
    smart: bool = False
    items: list[PlexItem] = field(default_factory=list, repr=False)
    added_at: int = field(default_factory=lambda: int(time.time()))
    updated_at: int = field(default_factory=lambda: int(time.time()))


@dataclass(eq=False)
class PlexSession:
    """Someone playing an item: ``view_offset`` (ms) says how far; ``state`` is ``playing``,
    ``paused`` or ``buffering``; ``transcode`` is False for direct play."""

    session_key: str
    item: PlexItem
    user: str
    view_offset: int
    transcode: bool = False
    state: str = "playing"
    player: str = "Chrome"
    platform: str = "Chrome"
    product: str = "Plex Web"
    location: str = "lan"
    address: str = "192.168.1.20"
    bandwidth: int = 0
    id: str = field(default_factory=lambda: secrets.token_hex(12))
    machine_identifier: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def user_id(self) -> int:
        return 1 if self.user == "owner" else 1000 + _number(self.user, below=9000000)

    @property
    def progress(self) -> float:
        return self.view_offset / self.item.duration if self.item.duration else 0.0


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakePlexMediaServer(FakeServer):
    """Plex Media Server with a machine identifier, a version, a name and a library.

    ``tokens`` are the ``X-Plex-Token`` values it accepts (the owner's token, typically);
    like a real server, it answers 401 to any other on the paths that need one.
    ``refreshes`` records each library refresh asked for, as ``(section key, path or None)``;
    a refresh of a film library scans its folders that exist on disk, ``scan_delay`` seconds
    later. ``collections`` are the collections by rating key, and ``collection_requests`` what
    was asked of them, as ``(method, path, query)``.

    It starts with Movies, TV Shows and Music libraries (``seed=False``: none, until an item
    is added); ``find(title)`` gives an item, ``add_movie``/``add_show``/``add_season``/
    ``add_album`` make one appear (newest in recently added), ``remove`` takes it away, and
    ``start_session``/``stop_session`` drive ``/status/sessions``.
    """

    machine_id: str = field(default_factory=lambda: secrets.token_hex(20))
    version: str = "1.41.3.9314-a0bfb8370"
    name: str = "Home Server"
    tokens: set[str] = field(default_factory=set)
    seed: bool = True
    libraries: list[PlexLibrary] = field(default_factory=list, repr=False)
    items: dict[str, PlexItem] = field(default_factory=dict, repr=False)
    sessions: list[PlexSession] = field(default_factory=list, repr=False)
    refreshes: list[tuple[str, str | None]] = field(default_factory=list)
    scan_delay: float = 0.0
    collections: dict[str, PlexCollection] = field(default_factory=dict, repr=False)
    collection_requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._rating_keys = itertools.count(101)
        self._scans: set[asyncio.Task[None]] = set()
        self._session_keys = itertools.count(1)
        if self.seed and not self.libraries and not self.items:
            self._seed()

    # --- test controls -------------------------------------------------------------------

    def add_library(
        self,
        title: str,
        type: str,
        locations: Sequence[str] = (),
        key: str | None = None,
        *,
        agent: str | None = None,
        scanner: str | None = None,
    ) -> PlexLibrary:
        """A library; ``agent`` and ``scanner`` default to those of its type (for a library of
        personal videos: ``type="movie"`` with :data:`OTHER_VIDEOS`)."""
        default_agent, default_scanner, folder = _LIBRARY_KINDS[type]
        library = PlexLibrary(
            key=key or str(max((int(lib.key) for lib in self.libraries), default=0) + 1),
            title=title,
            type=type,
            agent=agent or default_agent,
            scanner=scanner or default_scanner,
            locations=list(locations) or [folder],
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.machine_id}/{title}")),
        )
        self.libraries.append(library)
        return library

    def library(self, title_or_key: str) -> PlexLibrary:
        for library in self.libraries:
            if title_or_key in (library.title, library.key):
                return library
        raise KeyError(title_or_key)

    def _library_of(self, type: str, library: str | PlexLibrary | None) -> PlexLibrary:
        if isinstance(library, PlexLibrary):
            return library
        if library is not None:
            return self.library(library)
        for candidate in self.libraries:
            if candidate.type == type:
                return candidate
        return self.add_library(
            {"movie": "Movies", "show": "TV Shows", "artist": "Music"}[type], type
        )

    def _new(
        self, type: str, title: str, library: PlexLibrary, parent: PlexItem | None, **details: Any
    ) -> PlexItem:
        details.setdefault("added_at", int(time.time()))
        item = PlexItem(
            rating_key=str(next(self._rating_keys)),
            type=type,
            title=title,
            library=library,
            parent=parent,
            **details,
        )
        if item.updated_at is None:
            item.updated_at = item.added_at
        if parent is not None:
            parent.children.append(item)
            parent.children.sort(key=lambda c: c.index or 0)
            ancestor: PlexItem | None = parent
            while ancestor is not None:
                ancestor.updated_at = max(ancestor.updated_at or 0, item.added_at)
                ancestor = ancestor.parent
        self.items[item.rating_key] = item
        return item

    def add_movie(
        self,
        title: str,
        year: int,
        *,
        tmdb_id: int | None = None,
        imdb_id: str | None = None,
        library: str | PlexLibrary | None = None,
        **details: Any,
    ) -> PlexItem:
        """A film in a film library (the first one unless named); ``details`` are
        :class:`PlexItem` fields (``added_at`` defaults to now, so it tops recently added)."""
        section = self._library_of("movie", library)
        guids = [f"imdb://{imdb_id}"] if imdb_id else []
        guids += [f"tmdb://{tmdb_id}"] if tmdb_id else []
        details.setdefault("duration", 120 * 60000)
        details.setdefault("originally_available_at", f"{year}-06-01")
        details.setdefault("file", f"{section.location}/{title} ({year})/{title} ({year}).mkv")
        return self._new("movie", title, section, None, year=year, guids=guids, **details)

    def add_show(
        self,
        title: str,
        year: int,
        *,
        tvdb_id: int | None = None,
        tmdb_id: int | None = None,
        imdb_id: str | None = None,
        seasons: Mapping[int, int | Sequence[str]] | Iterable[int] = (),
        library: str | PlexLibrary | None = None,
        **details: Any,
    ) -> PlexItem:
        """A show with the given seasons: ``{1: 7, 2: ["Title", ...]}`` (episode counts or
        titles) or just season numbers (8 episodes each)."""
        section = self._library_of("show", library)
        guids = [f"imdb://{imdb_id}"] if imdb_id else []
        guids += [f"tmdb://{tmdb_id}"] if tmdb_id else []
        guids += [f"tvdb://{tvdb_id}"] if tvdb_id else []
        details.setdefault("duration", 45 * 60000)
        details.setdefault("originally_available_at", f"{year}-01-20")
        show = self._new("show", title, section, None, year=year, index=1, guids=guids, **details)
        plan = seasons if isinstance(seasons, Mapping) else dict.fromkeys(seasons, 8)
        for number, episodes in plan.items():
            self.add_season(show, number, episodes, added_at=show.added_at)
        return show

    def add_season(
        self,
        show: PlexItem,
        index: int,
        episodes: int | Sequence[str] = 8,
        *,
        added_at: int | None = None,
    ) -> PlexItem:
        """Season ``index`` of ``show`` with its episodes (a count or their titles)."""
        if show.type != "show":
            raise ValueError(f"{show.title} is a {show.type}, not a show")
        if any(s.index == index for s in show.children):
            raise ValueError(f"{show.title} already has season {index}")
        added = added_at if added_at is not None else int(time.time())
        year = (show.year or 2000) + max(index - 1, 0)
        season = self._new(
            "season",
            "Specials" if index == 0 else f"Season {index}",
            show.library,
            show,
            index=index,
            year=year,
            added_at=added,
        )
        titles = (
            [f"Episode {n}" for n in range(1, episodes + 1)]
            if isinstance(episodes, int)
            else list(episodes)
        )
        folder = f"{show.library.location}/{show.title} ({show.year})/Season {index:02d}"
        for number, title in enumerate(titles, start=1):
            self._new(
                "episode",
                title,
                show.library,
                season,
                index=number,
                year=year,
                guids=[f"tvdb://{_number(show.guid, index, number, below=9000000) + 1000000}"],
                duration=show.duration,
                content_rating=show.content_rating,
                originally_available_at=f"{year}-{(number - 1) // 4 % 12 + 1:02d}-"
                f"{(number - 1) % 4 * 7 + 1:02d}",
                directors=show.directors[:1],
                writers=show.writers[:1],
                added_at=added,
                file=f"{folder}/{show.title} - S{index:02d}E{number:02d} - {title}.mkv",
            )
        return season

    def add_album(
        self,
        artist: str,
        title: str,
        year: int,
        tracks: Sequence[str],
        *,
        library: str | PlexLibrary | None = None,
        **details: Any,
    ) -> PlexItem:
        """An album (and its artist, when new) with its tracks, in a music library."""
        section = self._library_of("artist", library)
        owner = next(
            (i for i in self.items.values() if i.type == "artist" and i.title == artist), None
        )
        added = details.pop("added_at", int(time.time()))
        if owner is None:
            owner = self._new(
                "artist",
                artist,
                section,
                None,
                index=1,
                genres=details.get("genres", [])[:1],
                added_at=added,
            )
        details.setdefault("originally_available_at", f"{year}-03-12")
        album = self._new(
            "album", title, section, owner, year=year, index=1, added_at=added, **details
        )
        for number, name in enumerate(tracks, start=1):
            self._new(
                "track",
                name,
                section,
                album,
                index=number,
                duration=(180 + _number(name, below=180)) * 1000,
                added_at=added,
                file=f"{section.location}/{artist}/{title}/{number:02d} - {name}.flac",
            )
        return album

    def find(self, title: str, type: str | None = None) -> PlexItem:
        """The item with this title (and type); KeyError when there is none."""
        for item in self.items.values():
            if item.title.lower() == title.lower() and type in (None, item.type):
                return item
        raise KeyError(title)

    def remove(self, item: PlexItem) -> None:
        """Take an item (and everything under it) out of the library."""
        for child in list(item.children):
            self.remove(child)
        self.items.pop(item.rating_key, None)
        if item.parent is not None and item in item.parent.children:
            item.parent.children.remove(item)
        self.sessions = [s for s in self.sessions if s.item is not item]

    def start_session(
        self,
        item: PlexItem,
        *,
        user: str = "owner",
        progress: float = 0.0,
        transcode: bool = False,
        state: str = "playing",
        player: str = "Chrome",
        platform: str = "Chrome",
        product: str = "Plex Web",
        location: str = "lan",
        bandwidth: int | None = None,
    ) -> PlexSession:
        """``user`` starts playing ``item`` (a film, episode or track), ``progress`` (0 to 1)
        of the way in; ``transcode`` switches from direct play to a transcode."""
        if item.type not in ("movie", "episode", "track"):
            raise ValueError(f"a {item.type} cannot be played; play one of its leaves")
        bitrate = self._media(item)["bitrate"]
        session = PlexSession(
            session_key=str(next(self._session_keys)),
            item=item,
            user=user,
            view_offset=int((item.duration or 0) * progress),
            transcode=transcode,
            state=state,
            player=player,
            platform=platform,
            product=product,
            location=location,
            address="192.168.1.20" if location == "lan" else "203.0.113.55",
            bandwidth=bandwidth if bandwidth is not None else (4000 if transcode else bitrate),
        )
        self.sessions.append(session)
        return session

    def stop_session(self, session: PlexSession) -> None:
        self.sessions.remove(session)

    def scan(self, library: PlexLibrary, path: str | None = None) -> list[PlexItem]:
        """What a scan of a film library finds: a film per video file under ``path`` (or its
        folders) not in the library yet, titled after its file. Hidden files and folders are
        skipped, as Plex skips them; folders that are not on disk hold nothing."""
        if library.type != "movie":
            return []
        roots = [path] if path else list(library.locations)
        known = {i.file for i in self.items.values() if i.library is library}
        added: list[PlexItem] = []
        for root in roots:
            if not any(_under(root, location) for location in library.locations):
                continue
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    file = os.path.join(folder, name)
                    if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_SUFFIXES:
                        continue
                    if file in known:
                        continue
                    known.add(file)
                    added.append(self._new("movie", Path(name).stem, library, None, file=file))
        library.scanned_at = int(time.time())
        return added

    def add_collection(self, title: str, items: Sequence[PlexItem]) -> PlexCollection:
        """A regular collection of ``items`` (at least one; all of one library and type)."""
        first = items[0]
        collection = PlexCollection(
            rating_key=str(next(self._rating_keys)),
            title=title,
            library=first.library,
            subtype=first.type,
        )
        self.collections[collection.rating_key] = collection
        self._fill(collection, items)
        return collection

    def collection(self, title: str) -> PlexCollection:
        """The collection with this title; KeyError when there is none."""
        for found in self.collections.values():
            if found.title == title:
                return found
        raise KeyError(title)

    def _seed(self) -> None:
        self.add_library("Movies", "movie", ["/data/movies"])
        self.add_library("TV Shows", "show", ["/data/tv"])
        self.add_library("Music", "artist", ["/data/music"])
        day = 86400
        for n, (title, year, tmdb, imdb, extra) in enumerate(_SEED_MOVIES):
            self.add_movie(
                title,
                year,
                tmdb_id=tmdb,
                imdb_id=imdb,
                added_at=EPOCH - day * (40 - 5 * n),
                **extra,
            )
        for n, (title, year, tvdb, tmdb, imdb, seasons, extra) in enumerate(_SEED_SHOWS):
            show = self.add_show(
                title,
                year,
                tvdb_id=tvdb,
                tmdb_id=tmdb,
                imdb_id=imdb,
                added_at=EPOCH - day * (60 - 7 * n),
                **extra,
            )
            for number, episodes in seasons.items():
                self.add_season(
                    show, number, episodes, added_at=EPOCH - day * (30 - 9 * number - n)
                )
        self.add_album(
            "Daft Punk",
            "Discovery",
            2001,
            ["One More Time", "Aerodynamic", "Digital Love", "Harder, Better, Faster, Stronger"],
            studio="Virgin",
            genres=["Electronic", "House"],
            added_at=EPOCH - day * 3,
        )

    # --- the API -------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/identity", self.identity)
        guarded: list[tuple[str, Handler]] = [
            ("/", self.capabilities),
            ("/library/sections", self.sections),
            ("/library/sections/{key}/all", self.section_all),
            ("/library/sections/{key}/refresh", self.refresh),
            ("/library/metadata/{rating_key}", self.metadata),
            ("/library/metadata/{rating_key}/children", self.children),
            ("/library/metadata/{rating_key}/thumb", self.thumb),
            ("/library/recentlyAdded", self.recently_added),
            ("/hubs/search", self.search),
            ("/status/sessions", self.status_sessions),
            ("/photo/:/transcode", self.photo_transcode),
            ("/library/sections/{key}/collections", self.section_collections),
            ("/library/collections/{collection_id}/items", self.collection_items),
        ]
        for path, handler in guarded:
            app.router.add_get(path, self._guard(handler))
        app.router.add_post("/library/collections", self._guard(self.create_collection))
        app.router.add_put(
            "/library/collections/{collection_id}/items", self._guard(self.add_collection_items)
        )
        app.on_cleanup.append(self._stop_scans)

    async def _stop_scans(self, app: web.Application) -> None:
        for task in list(self._scans):
            task.cancel()

    def _authorised(self, request: web.Request) -> bool:
        token = request.headers.get("X-Plex-Token") or request.query.get("X-Plex-Token")
        return token is not None and token in self.tokens

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self._authorised(request):
                return _html(401, _UNAUTHORISED)
            return await handler(request)

        return guarded

    async def identity(self, request: web.Request) -> web.Response:
        container = {
            "size": 0,
            "claimed": True,
            "machineIdentifier": self.machine_id,
            "version": self.version,
        }
        return _answer(request, _Node("MediaContainer", container))

    async def capabilities(self, request: web.Request) -> web.Response:
        container: dict[str, Any] = {
            "size": 3,
            "allowCameraUpload": False,
            "allowChannelAccess": True,
            "allowMediaDeletion": True,
            "allowSharing": True,
            "allowSync": False,
            "backgroundProcessing": True,
            "certificate": True,
            "companionProxy": True,
            "countryCode": "usa",
            "eventStream": True,
            "friendlyName": self.name,
            "hubSearch": True,
            "livetv": 0,
            "machineIdentifier": self.machine_id,
            "multiuser": True,
            "myPlex": True,
            "myPlexMappingState": "mapped",
            "myPlexSigninState": "ok",
            "myPlexSubscription": False,
            "platform": "Linux",
            "platformVersion": "6.1",
            "transcoderVideo": True,
            "updatedAt": 1718000000,
            "version": self.version,
        }
        directories = [
            _Node("Directory", {"count": 1, "key": key, "title": key})
            for key in ("library", "playlists", "search")
        ]
        return _answer(request, _Node("MediaContainer", container, directories))

    # --- libraries -----------------------------------------------------------------------

    def _section(self, library: PlexLibrary) -> _Node:
        stamp = max(
            [i.updated_at or i.added_at for i in self.items.values() if i.library is library],
            default=library.scanned_at,
        )
        attrs = {
            "allowSync": True,
            "art": f"/:/resources/{library.type}-fanart.jpg",
            "composite": f"/library/sections/{library.key}/composite/{stamp}",
            "filters": True,
            "refreshing": False,
            "thumb": f"/:/resources/{library.type}.png",
            "key": library.key,
            "type": library.type,
            "title": library.title,
            "agent": library.agent,
            "scanner": library.scanner,
            "language": library.language,
            "uuid": library.uuid,
            "updatedAt": stamp,
            "createdAt": library.created_at,
            "scannedAt": max(library.scanned_at, stamp),
            "content": True,
            "directory": True,
            "contentChangedAt": stamp,
            "hidden": 0,
        }
        locations = [
            _Node("Location", {"id": int(library.key) * 10 + n, "path": path})
            for n, path in enumerate(library.locations, start=1)
        ]
        return _Node("Directory", attrs, locations)

    async def sections(self, request: web.Request) -> web.Response:
        container = {"size": len(self.libraries), "allowSync": False, "title1": "Plex Library"}
        return _answer(
            request,
            _Node("MediaContainer", container, [self._section(lib) for lib in self.libraries]),
        )

    def _library_for(self, request: web.Request) -> PlexLibrary | None:
        key = request.match_info["key"]
        return next((lib for lib in self.libraries if lib.key == key), None)

    async def section_all(self, request: web.Request) -> web.Response:
        library = self._library_for(request)
        if library is None:
            return _html(404, _NOT_FOUND)
        try:
            wanted = _type_param(request) or library.type
            start, size = _paging(request)
            year = int(request.query["year"]) if "year" in request.query else None
        except ValueError:
            return _html(400, _BAD_REQUEST)
        title = request.query.get("title", "").lower()
        chosen = [
            i
            for i in self.items.values()
            if i.library is library
            and i.type == wanted
            and title in i.title.lower()
            and year in (None, i.year)
        ]
        chosen = _sorted(chosen, request.query.get("sort", "titleSort"))
        page = chosen[start : None if size is None else start + size]
        guids = request.query.get("includeGuids") == "1"
        plural = {"movie": "Movies", "show": "Shows", "season": "Seasons", "episode": "Episodes"}
        container = {
            "size": len(page),
            "totalSize": len(chosen),
            "offset": start,
            "allowSync": True,
            "art": f"/:/resources/{library.type}-fanart.jpg",
            "content": "secondary",
            "identifier": LIBRARY_IDENTIFIER,
            "librarySectionID": int(library.key),
            "librarySectionTitle": library.title,
            "librarySectionUUID": library.uuid,
            "mediaTagPrefix": MEDIA_TAG_PREFIX,
            "mediaTagVersion": EPOCH,
            "thumb": f"/:/resources/{library.type}.png",
            "nocache": True,
            "title1": library.title,
            "title2": f"All {plural.get(wanted, wanted.title() + 's')}",
            "viewGroup": wanted,
            "viewMode": 65592,
        }
        nodes = [self._item(i, "list", guids=guids) for i in page]
        return _answer(
            request, _Node("MediaContainer", container, nodes), _paging_headers(start, chosen)
        )

    async def refresh(self, request: web.Request) -> web.Response:
        library = self._library_for(request)
        if library is None:
            return _html(404, _NOT_FOUND)
        path = request.query.get("path")
        self.refreshes.append((library.key, path))
        library.scanned_at = int(time.time())
        if self.scan_delay:
            task = asyncio.create_task(self._scan_later(library, path))
            self._scans.add(task)
            task.add_done_callback(self._scans.discard)
        else:
            self.scan(library, path)
        return web.Response(status=200)

    async def _scan_later(self, library: PlexLibrary, path: str | None) -> None:
        await asyncio.sleep(self.scan_delay)
        self.scan(library, path)

    # --- collections ---------------------------------------------------------------------

    def _note_collection_request(self, request: web.Request) -> None:
        self.collection_requests.append((request.method, request.path, dict(request.query)))

    def _collection_node(self, collection: PlexCollection) -> _Node:
        library = collection.library
        attrs: dict[str, Any] = {
            "ratingKey": collection.rating_key,
            "key": f"/library/collections/{collection.rating_key}/children",
            "guid": f"collection://{_digest(self.machine_id, collection.rating_key)[:32]}",
            "type": "collection",
            "title": collection.title,
            "librarySectionTitle": library.title,
            "librarySectionID": int(library.key),
            "librarySectionKey": f"/library/sections/{library.key}",
            "subtype": collection.subtype,
            "summary": "",
            "smart": True if collection.smart else None,
            "thumb": f"/library/collections/{collection.rating_key}/composite/"
            f"{collection.updated_at}",
            "addedAt": collection.added_at,
            "updatedAt": collection.updated_at,
            "childCount": len(collection.items),
        }
        return _Node("Directory", attrs, json_key="Metadata")

    def _uri_items(self, uri: str, library: PlexLibrary) -> list[PlexItem] | None:
        """The items a ``server://`` URI names, all of ``library``; ``None`` when it names
        another server, an unknown item or one of another library."""
        match = _ITEMS_URI.match(uri)
        if match is None or match["machine"] != self.machine_id:
            return None
        found = [self.items.get(key) for key in match["keys"].split(",")]
        if any(i is None or i.library is not library for i in found):
            return None
        return [i for i in found if i is not None]

    def _fill(self, collection: PlexCollection, items: Iterable[PlexItem]) -> None:
        for item in items:
            if item not in collection.items:
                collection.items.append(item)
            if collection.title not in item.collections:
                item.collections.append(collection.title)
        collection.updated_at = int(time.time())

    async def section_collections(self, request: web.Request) -> web.Response:
        self._note_collection_request(request)
        library = self._library_for(request)
        if library is None:
            return _html(404, _NOT_FOUND)
        chosen = sorted(
            (c for c in self.collections.values() if c.library is library),
            key=lambda c: c.title.lower(),
        )
        container = {
            "size": len(chosen),
            "totalSize": len(chosen),
            "offset": 0,
            "allowSync": False,
            "art": f"/:/resources/{library.type}-fanart.jpg",
            "identifier": LIBRARY_IDENTIFIER,
            "librarySectionID": int(library.key),
            "librarySectionTitle": library.title,
            "librarySectionUUID": library.uuid,
            "mediaTagPrefix": MEDIA_TAG_PREFIX,
            "mediaTagVersion": EPOCH,
            "title1": library.title,
            "title2": "All Collections",
            "viewGroup": "secondary",
        }
        nodes = [self._collection_node(c) for c in chosen]
        return _answer(
            request, _Node("MediaContainer", container, nodes), _paging_headers(0, chosen)
        )

    async def create_collection(self, request: web.Request) -> web.Response:
        """``POST /library/collections``: a collection in library ``sectionId``; a regular one
        (``smart=0``) starts with the items ``uri`` names, of ``type``."""
        self._note_collection_request(request)
        query = request.query
        library = next((lib for lib in self.libraries if lib.key == query.get("sectionId")), None)
        title = query.get("title", "").strip()
        smart = query.get("smart", "0") in ("1", "true")
        uri = query.get("uri", "")
        try:
            kind = _type_param(request)
        except ValueError:
            return _html(400, _BAD_REQUEST)
        if library is None or not title or (smart and not uri):
            return _html(400, _BAD_REQUEST)
        kind = kind or library.type
        items: list[PlexItem] = []
        if uri:
            named = self._uri_items(uri, library)
            if named is None or any(i.type != kind for i in named):
                return _html(400, _BAD_REQUEST)
            items = named
        collection = PlexCollection(
            rating_key=str(next(self._rating_keys)),
            title=title,
            library=library,
            subtype=kind,
            smart=smart,
        )
        self.collections[collection.rating_key] = collection
        self._fill(collection, items)
        return self._collection_answer(request, collection)

    def _collection_answer(self, request: web.Request, collection: PlexCollection) -> web.Response:
        library = collection.library
        container = {
            "size": 1,
            "identifier": LIBRARY_IDENTIFIER,
            "librarySectionID": int(library.key),
            "librarySectionTitle": library.title,
            "librarySectionUUID": library.uuid,
            "mediaTagPrefix": MEDIA_TAG_PREFIX,
            "mediaTagVersion": EPOCH,
        }
        return _answer(
            request, _Node("MediaContainer", container, [self._collection_node(collection)])
        )

    def _collection_for(self, request: web.Request) -> PlexCollection | None:
        return self.collections.get(request.match_info["collection_id"])

    async def collection_items(self, request: web.Request) -> web.Response:
        self._note_collection_request(request)
        collection = self._collection_for(request)
        if collection is None:
            return _html(404, _NOT_FOUND)
        try:
            start, size = _paging(request)
        except ValueError:
            return _html(400, _BAD_REQUEST)
        page = collection.items[start : None if size is None else start + size]
        library = collection.library
        container = {
            "size": len(page),
            "totalSize": len(collection.items),
            "offset": start,
            "key": collection.rating_key,
            "allowSync": True,
            "identifier": LIBRARY_IDENTIFIER,
            "librarySectionID": int(library.key),
            "librarySectionTitle": library.title,
            "librarySectionUUID": library.uuid,
            "mediaTagPrefix": MEDIA_TAG_PREFIX,
            "mediaTagVersion": EPOCH,
            "title1": library.title,
            "title2": collection.title,
            "viewGroup": collection.subtype,
        }
        nodes = [self._item(i, "list", guids=False) for i in page]
        return _answer(
            request,
            _Node("MediaContainer", container, nodes),
            _paging_headers(start, collection.items),
        )

    async def add_collection_items(self, request: web.Request) -> web.Response:
        """``PUT /library/collections/{id}/items?uri=``: the named items join the collection
        (those already in it stay once)."""
        self._note_collection_request(request)
        collection = self._collection_for(request)
        if collection is None:
            return _html(404, _NOT_FOUND)
        named = self._uri_items(request.query.get("uri", ""), collection.library)
        if not named or any(i.type != collection.subtype for i in named):
            return _html(400, _BAD_REQUEST)
        self._fill(collection, named)
        return self._collection_answer(request, collection)

    # --- items ---------------------------------------------------------------------------

    def _container(self, items: Sequence[PlexItem]) -> dict[str, Any]:
        libraries = {i.library for i in items}
        common: dict[str, Any] = {
            "size": len(items),
            "allowSync": True,
            "identifier": LIBRARY_IDENTIFIER,
        }
        if len(libraries) == 1:
            (library,) = libraries
            common |= {
                "librarySectionID": int(library.key),
                "librarySectionTitle": library.title,
                "librarySectionUUID": library.uuid,
            }
        return common | {"mediaTagPrefix": MEDIA_TAG_PREFIX, "mediaTagVersion": EPOCH}

    async def metadata(self, request: web.Request) -> web.Response:
        keys = request.match_info["rating_key"].split(",")
        found = [self.items[k] for k in keys if k in self.items]
        if not found:
            return _html(404, _NOT_FOUND)
        nodes = [self._item(i, "detail", guids=True) for i in found]
        return _answer(request, _Node("MediaContainer", self._container(found), nodes))

    async def children(self, request: web.Request) -> web.Response:
        parent = self.items.get(request.match_info["rating_key"])
        if parent is None:
            return _html(404, _NOT_FOUND)
        kids = list(parent.children)
        nodes: list[_Node] = []
        if parent.type == "show" and len(kids) > 1:
            # Like Plex, a show with several seasons lists "All episodes" first.
            nodes.append(
                _Node(
                    "Directory",
                    {
                        "leafCount": len(parent.leaves()),
                        "thumb": parent.thumb,
                        "viewedLeafCount": 0,
                        "key": f"/library/metadata/{parent.rating_key}/allLeaves",
                        "title": "All episodes",
                    },
                )
            )
        nodes += [
            self._item(i, "list", guids=request.query.get("includeGuids") == "1") for i in kids
        ]
        library = parent.library
        view_group = {"show": "season", "season": "episode", "artist": "album", "album": "track"}
        container: dict[str, Any] = {
            "size": len(nodes),
            "allowSync": True,
            "art": parent.art,
            "identifier": LIBRARY_IDENTIFIER,
            "key": parent.rating_key,
            "librarySectionID": int(library.key),
            "librarySectionTitle": library.title,
            "librarySectionUUID": library.uuid,
            "mediaTagPrefix": MEDIA_TAG_PREFIX,
            "mediaTagVersion": EPOCH,
            "nocache": True,
            "parentIndex": parent.index,
            "parentTitle": parent.title,
            "parentYear": parent.year,
            "summary": parent.summary,
            "theme": f"/library/metadata/{parent.rating_key}/theme/{parent.updated_at}"
            if parent.type == "show"
            else None,
            "thumb": parent.thumb,
            "title1": parent.parent.title if parent.parent else library.title,
            "title2": parent.title,
            "viewGroup": view_group.get(parent.type, parent.type),
            "viewMode": 65592,
        }
        return _answer(request, _Node("MediaContainer", container, nodes))

    async def recently_added(self, request: web.Request) -> web.Response:
        try:
            wanted = _type_param(request)
            start, size = _paging(request)
            section = request.query.get("sectionID")
        except ValueError:
            return _html(400, _BAD_REQUEST)
        # New episodes show as their season, new tracks as their album, as on a real server.
        kinds = {wanted} if wanted else {"movie", "season", "album"}
        chosen = [
            i for i in self.items.values() if i.type in kinds and section in (None, i.library.key)
        ]
        chosen.sort(key=lambda i: (i.added_at, int(i.rating_key)), reverse=True)
        page = chosen[start : None if size is None else start + size]
        guids = request.query.get("includeGuids") == "1"
        container = {
            "size": len(page),
            "totalSize": len(chosen),
            "offset": start,
            "allowSync": False,
            "identifier": LIBRARY_IDENTIFIER,
            "mediaTagPrefix": MEDIA_TAG_PREFIX,
            "mediaTagVersion": EPOCH,
            "mixedParents": True,
        }
        nodes = [self._item(i, "mixed", guids=guids) for i in page]
        return _answer(
            request, _Node("MediaContainer", container, nodes), _paging_headers(start, chosen)
        )

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "").strip().lower()
        if not query:
            return _html(400, _BAD_REQUEST)
        try:
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            return _html(400, _BAD_REQUEST)
        section = request.query.get("sectionId")
        words = query.split()
        hubs: list[_Node] = []
        for kind, title in _HUBS:
            matches = [
                i
                for i in self.items.values()
                if i.type == kind
                and section in (None, i.library.key)
                and all(w in i.title.lower() for w in words)
            ]
            matches.sort(key=lambda i: (not i.title.lower().startswith(query), i.title))
            shown = matches[:limit]
            attrs = {
                "title": title,
                "type": kind,
                "hubIdentifier": kind,
                "context": "",
                "hubKey": "/library/metadata/" + ",".join(i.rating_key for i in shown)
                if shown
                else None,
                "size": len(shown),
                "more": len(matches) > len(shown),
                "style": "shelf",
            }
            hubs.append(_Node("Hub", attrs, [self._item(i, "mixed", guids=False) for i in shown]))
        return _answer(request, _Node("MediaContainer", {"size": len(hubs)}, hubs))

    async def status_sessions(self, request: web.Request) -> web.Response:
        nodes = [self._session(s) for s in self.sessions]
        return _answer(request, _Node("MediaContainer", {"size": len(nodes)}, nodes))

    async def photo_transcode(self, request: web.Request) -> web.Response:
        if not request.query.get("url"):
            return _html(400, _BAD_REQUEST)
        try:
            width = int(float(request.query["width"]))
            height = int(float(request.query["height"]))
        except (KeyError, ValueError):
            return _html(400, _BAD_REQUEST)
        return _image(request, width, height)

    async def thumb(self, request: web.Request) -> web.Response:
        if request.match_info["rating_key"] not in self.items:
            return _html(404, _NOT_FOUND)
        try:
            width = int(float(request.query.get("width", "300")))
            height = int(float(request.query.get("height", "450")))
        except ValueError:
            return _html(400, _BAD_REQUEST)
        return _image(request, width, height)

    # --- how items are written -----------------------------------------------------------

    def _media(self, item: PlexItem) -> dict[str, Any]:
        duration = item.duration or 0
        if item.type == "track":
            bitrate = 950
            media: dict[str, Any] = {
                "id": int(item.rating_key) + 50000,
                "duration": duration,
                "bitrate": bitrate,
                "audioChannels": 2,
                "audioCodec": "flac",
                "container": "flac",
            }
        else:
            bitrate = 10000 if item.type == "movie" else 4500
            media = {
                "id": int(item.rating_key) + 50000,
                "duration": duration,
                "bitrate": bitrate,
                "width": 1920,
                "height": 1080 if item.type == "episode" else 800,
                "aspectRatio": 1.78 if item.type == "episode" else 2.35,
                "audioChannels": 6,
                "audioCodec": "ac3" if item.type == "episode" else "eac3",
                "videoCodec": "h264",
                "videoResolution": "1080",
                "container": "mkv",
                "videoFrameRate": "24p",
                "videoProfile": "high",
            }
        media["part"] = {
            "id": int(item.rating_key) + 90000,
            "key": f"/library/parts/{int(item.rating_key) + 90000}/{item.added_at}/file"
            + ("." + (item.file or "x.mkv").rsplit(".", 1)[-1]),
            "duration": duration,
            "file": item.file,
            "size": bitrate * duration // 8,
            "container": media["container"],
        }
        if "videoProfile" in media:
            media["part"]["videoProfile"] = media["videoProfile"]
        return media

    def _media_node(self, item: PlexItem, session: PlexSession | None = None) -> _Node:
        media = self._media(item)
        part = media.pop("part")
        if session is not None:
            # In sessions Plex writes these ids as strings and marks what is being played.
            media["id"], part["id"] = str(media["id"]), str(part["id"])
            media["selected"] = True
            part["decision"] = "transcode" if session.transcode else "directplay"
            part["selected"] = True
        return _Node("Media", media, [_Node("Part", part)])

    def _tags(self, item: PlexItem, context: str) -> list[_Node]:
        detail = context in ("detail", "session")
        lists = (
            ("Genre", item.genres, 2),
            ("Country", item.countries, 2),
            ("Collection", item.collections, 2),
            ("Director", item.directors, 1),
            ("Writer", item.writers, 2),
            ("Role", item.roles, 3),
        )
        nodes: list[_Node] = []
        for tag, values, listed in lists:
            for value in values if detail else values[:listed]:
                attrs: dict[str, Any] = {"tag": value}
                if detail:
                    number = _number(tag, value)
                    attrs = {
                        "id": str(number) if context == "session" else number,
                        "filter": f"{tag.lower()}={number}",
                        "tag": value,
                    }
                    if tag in ("Director", "Writer", "Role"):
                        attrs["tagKey"] = _digest("person", value)[:24]
                nodes.append(_Node(tag, attrs))
        return nodes

    def _item(self, item: PlexItem, context: str, *, guids: bool) -> _Node:
        """An item as Plex writes it: ``context`` is ``list`` (a library or children listing),
        ``detail`` (its metadata), ``mixed`` (recently added, search) or ``session``."""
        attrs = self._attrs(item, context)
        children: list[_Node] = []
        if item.type in ("movie", "episode", "track"):
            children.append(self._media_node(item))
        if item.type in ("movie", "show", "episode", "artist", "album"):
            children += self._tags(item, context)
        if guids or context == "detail":
            children += [_Node("Guid", {"id": g}) for g in item.guids]
        children += [_Node("Field", {"locked": True, "name": f}) for f in item.locked_fields]
        return _Node(_ELEMENTS[item.type], attrs, children, json_key="Metadata")

    def _attrs(self, item: PlexItem, context: str) -> dict[str, Any]:
        library = item.library
        parent, top = item.parent, item.top
        grandparent = parent.parent if parent is not None else None
        section: dict[str, Any] = {}
        if context != "list":
            section = {
                "librarySectionTitle": library.title,
                "librarySectionID": library.key if context == "session" else int(library.key),
                "librarySectionKey": f"/library/sections/{library.key}",
            }
        a: dict[str, Any] = {"ratingKey": item.rating_key, "key": item.key}
        if parent is not None:
            a["parentRatingKey"] = parent.rating_key
        if grandparent is not None:
            a["grandparentRatingKey"] = grandparent.rating_key
        a["guid"] = item.guid
        if parent is not None:
            a["parentGuid"] = parent.guid
        if grandparent is not None:
            a["grandparentGuid"] = grandparent.guid
        if item.type in ("movie", "show"):
            a["slug"] = _slug(item.title)
        elif item.type == "episode":
            a["grandparentSlug"] = _slug(top.title)
        a["studio"] = item.studio
        a["type"] = item.type
        a["title"] = item.title
        if grandparent is not None:
            a["grandparentKey"] = f"/library/metadata/{grandparent.rating_key}"
        if parent is not None:
            a["parentKey"] = f"/library/metadata/{parent.rating_key}"
        if grandparent is not None:
            a["grandparentTitle"] = grandparent.title
        if parent is not None:
            a["parentTitle"] = parent.title
        a["titleSort"] = (
            _title_sort(item.title) if item.type in ("movie", "show", "artist") else None
        )
        a |= section
        a["contentRating"] = item.content_rating
        a["summary"] = item.summary
        a["index"] = item.index
        if parent is not None:
            a["parentIndex"] = parent.index
        a["rating"] = item.rating
        a["audienceRating"] = item.audience_rating
        if item.type in ("season", "track") and parent is not None:
            a["parentYear"] = parent.year
        a["year"] = item.year if item.type not in ("season", "artist") else None
        a["tagline"] = item.tagline
        a["thumb"] = item.thumb
        a["art"] = item.art
        if parent is not None:
            a["parentThumb"] = parent.thumb
        if grandparent is not None:
            a["grandparentThumb"] = grandparent.thumb
            a["grandparentArt"] = grandparent.art
        if item.type == "show":
            a["theme"] = f"/library/metadata/{item.rating_key}/theme/{item.updated_at}"
        a["duration"] = item.duration
        a["originallyAvailableAt"] = item.originally_available_at
        if item.type in ("show", "season", "album"):
            a["leafCount"] = len(item.leaves())
            a["viewedLeafCount"] = 0
        if item.type == "show":
            a["childCount"] = len(item.children)
            a["seasonCount"] = len([s for s in item.children if s.index])
        a["addedAt"] = item.added_at
        a["updatedAt"] = item.updated_at
        # The Plex agents take film ratings from Rotten Tomatoes and show ratings from TMDB.
        if item.rating is not None and item.type == "movie":
            fresh = "ripe" if item.rating >= 6 else "rotten"
            a["ratingImage"] = f"rottentomatoes://image.rating.{fresh}"
        if item.audience_rating is not None:
            a["audienceRatingImage"] = (
                "rottentomatoes://image.rating.upright"
                if item.type == "movie"
                else "themoviedb://image.rating"
            )
        return {k: v for k, v in a.items() if v is not None}

    def _session(self, session: PlexSession) -> _Node:
        item = session.item
        node = self._item(item, "session", guids=False)
        node.attrs |= {"sessionKey": session.session_key, "viewOffset": session.view_offset}
        node.children[0] = self._media_node(item, session)
        user = {
            "id": str(session.user_id),
            "thumb": f"https://plex.tv/users/{_digest(session.user)[:16]}/avatar?c={EPOCH}",
            "title": session.user,
        }
        player = {
            "address": session.address,
            "device": "Linux" if session.platform == "Chrome" else session.platform,
            "machineIdentifier": session.machine_identifier,
            "model": "hosted" if session.product == "Plex Web" else "standalone",
            "platform": session.platform,
            "platformVersion": "126.0",
            "product": session.product,
            "profile": "Web" if session.product == "Plex Web" else session.product,
            "remotePublicAddress": "203.0.113.55",
            "state": session.state,
            "title": session.player,
            "vendor": "",
            "version": "4.132.2",
            "local": session.location == "lan",
            "relayed": False,
            "secure": True,
            "userID": session.user_id,
        }
        extra = [
            _Node("User", user, single=True),
            _Node("Player", player, single=True),
            _Node(
                "Session",
                {"id": session.id, "bandwidth": session.bandwidth, "location": session.location},
                single=True,
            ),
        ]
        if session.transcode:
            media = self._media(item)
            video = item.type != "track"
            transcode: dict[str, Any] = {
                "key": f"/transcode/sessions/{session.id}",
                "throttled": False,
                "complete": False,
                "progress": round(min(100.0, session.progress * 100 + 7.5), 1),
                "size": -22,
                "speed": 1.8,
                "error": False,
                "duration": item.duration,
                "context": "streaming",
                "sourceVideoCodec": media.get("videoCodec"),
                "sourceAudioCodec": media["audioCodec"],
                "videoDecision": "transcode" if video else None,
                "audioDecision": "transcode",
                "protocol": "dash" if session.product == "Plex Web" else "hls",
                "container": "mp4" if session.product == "Plex Web" else "mpegts",
                "videoCodec": "h264" if video else None,
                "audioCodec": "aac",
                "audioChannels": 2,
                "transcodeHwRequested": True,
                "transcodeHwFullPipeline": False,
                "timeStamp": round(time.time(), 3),
            }
            extra.append(
                _Node(
                    "TranscodeSession",
                    {k: v for k, v in transcode.items() if v is not None},
                    single=True,
                )
            )
        node.children += extra
        return node


def _under(path: str, folder: str) -> bool:
    path, folder = path.rstrip("/") or "/", folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _type_param(request: web.Request) -> str | None:
    if "type" not in request.query:
        return None
    number = int(request.query["type"])
    for name, value in TYPE_NUMBERS.items():
        if value == number:
            return name
    raise ValueError(number)


def _paging(request: web.Request) -> tuple[int, int | None]:
    """X-Plex-Container-Start and -Size, as query parameters or headers (Plex takes both)."""

    def read(name: str) -> str | None:
        return request.query.get(name) or request.headers.get(name)

    start, size = read("X-Plex-Container-Start"), read("X-Plex-Container-Size")
    first = int(start) if start else 0
    count = int(size) if size else None
    if first < 0 or (count is not None and count < 0):
        raise ValueError("negative paging")
    return first, count


def _paging_headers(start: int, everything: Sequence[Any]) -> dict[str, str]:
    return {
        "X-Plex-Container-Start": str(start),
        "X-Plex-Container-Total-Size": str(len(everything)),
    }


def _sorted(items: list[PlexItem], sort: str) -> list[PlexItem]:
    field_name, _, direction = sort.partition(":")
    keys: dict[str, Callable[[PlexItem], Any]] = {
        "titleSort": lambda i: (_title_sort(i.title) or i.title).lower(),
        "title": lambda i: i.title.lower(),
        "addedAt": lambda i: (i.added_at, int(i.rating_key)),
        "updatedAt": lambda i: (i.updated_at or 0, int(i.rating_key)),
        "year": lambda i: (i.year or 0, i.title.lower()),
        "originallyAvailableAt": lambda i: i.originally_available_at or "",
        "index": lambda i: i.index or 0,
    }
    key = keys.get(field_name, keys["titleSort"])
    return sorted(items, key=key, reverse=direction == "desc")


def _image(request: web.Request, width: int, height: int) -> web.Response:
    width, height = max(1, min(width, 2000)), max(1, min(height, 2000))
    if request.query.get("format") == "png":
        return web.Response(body=_grey_png(width, height), content_type="image/png")
    return web.Response(body=_grey_jpeg(width, height), content_type="image/jpeg")


_BREAKING_BAD = {
    1: [
        "Pilot",
        "Cat's in the Bag...",
        "...And the Bag's in the River",
        "Cancer Man",
        "Gray Matter",
        "Crazy Handful of Nothin'",
        "A No-Rough-Stuff-Type Deal",
    ],
    2: [
        "Seven Thirty-Seven",
        "Grilled",
        "Bit by a Dead Bee",
        "Down",
        "Breakage",
        "Peekaboo",
        "Negro y Azul",
        "Better Call Saul",
        "4 Days Out",
        "Over",
        "Mandala",
        "Phoenix",
        "ABQ",
    ],
}
_STRANGER_THINGS = {
    1: [
        f"Chapter {n}: {t}"
        for n, t in zip(
            ("One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight"),
            (
                "The Vanishing of Will Byers",
                "The Weirdo on Maple Street",
                "Holly, Jolly",
                "The Body",
                "The Flea and the Acrobat",
                "The Monster",
                "The Bathtub",
                "The Upside Down",
            ),
            strict=True,
        )
    ]
}

_SEED_MOVIES: list[tuple[str, int, int, str, dict[str, Any]]] = [
    (
        "The Matrix",
        1999,
        603,
        "tt0133093",
        {
            "studio": "Warner Bros. Pictures",
            "content_rating": "R",
            "rating": 8.3,
            "audience_rating": 8.5,
            "tagline": "Welcome to the Real World.",
            "summary": "A hacker learns that the world he knows is a simulation and joins the "
            "rebels fighting the machines that run it.",
            "duration": 136 * 60000,
            "originally_available_at": "1999-03-31",
            "genres": ["Action", "Science Fiction"],
            "directors": ["Lana Wachowski", "Lilly Wachowski"],
            "writers": ["Lilly Wachowski", "Lana Wachowski"],
            "roles": ["Keanu Reeves", "Laurence Fishburne", "Carrie-Anne Moss", "Hugo Weaving"],
            "countries": ["United States of America"],
            "collections": ["The Matrix Collection"],
            "locked_fields": ["collection"],
        },
    ),
    (
        "The Dark Knight",
        2008,
        155,
        "tt0468569",
        {
            "studio": "Warner Bros. Pictures",
            "content_rating": "PG-13",
            "rating": 9.4,
            "audience_rating": 9.0,
            "tagline": "Welcome to a world without rules.",
            "summary": "Batman, Gordon and Harvey Dent take on the organised crime of Gotham "
            "until the Joker drives the city into chaos.",
            "duration": 152 * 60000,
            "originally_available_at": "2008-07-16",
            "genres": ["Drama", "Action", "Crime"],
            "directors": ["Christopher Nolan"],
            "writers": ["Jonathan Nolan", "Christopher Nolan"],
            "roles": ["Christian Bale", "Heath Ledger", "Aaron Eckhart"],
            "countries": ["United States of America", "United Kingdom"],
        },
    ),
    (
        "Inception",
        2010,
        27205,
        "tt1375666",
        {
            "studio": "Legendary Pictures",
            "content_rating": "PG-13",
            "rating": 8.7,
            "audience_rating": 9.1,
            "tagline": "Your mind is the scene of the crime.",
            "summary": "A thief who steals secrets from dreams is offered a way home if he can "
            "plant an idea instead.",
            "duration": 148 * 60000,
            "originally_available_at": "2010-07-15",
            "genres": ["Action", "Science Fiction", "Adventure"],
            "directors": ["Christopher Nolan"],
            "writers": ["Christopher Nolan"],
            "roles": ["Leonardo DiCaprio", "Joseph Gordon-Levitt", "Elliot Page"],
            "countries": ["United States of America", "United Kingdom"],
        },
    ),
    (
        "Interstellar",
        2014,
        157336,
        "tt0816692",
        {
            "studio": "Paramount Pictures",
            "content_rating": "PG-13",
            "rating": 7.3,
            "audience_rating": 8.6,
            "tagline": "Mankind was born on Earth. It was never meant to die here.",
            "summary": "With the Earth failing, a former pilot leads a crew through a wormhole "
            "to look for a new home for humanity.",
            "duration": 169 * 60000,
            "originally_available_at": "2014-11-05",
            "genres": ["Adventure", "Drama", "Science Fiction"],
            "directors": ["Christopher Nolan"],
            "writers": ["Jonathan Nolan", "Christopher Nolan"],
            "roles": ["Matthew McConaughey", "Anne Hathaway", "Jessica Chastain"],
            "countries": ["United States of America", "United Kingdom"],
        },
    ),
    (
        "Arrival",
        2016,
        329865,
        "tt2543164",
        {
            "studio": "Paramount Pictures",
            "content_rating": "PG-13",
            "rating": 9.4,
            "audience_rating": 8.2,
            "tagline": "Why are they here?",
            "summary": "A linguist is asked to find out what the visitors in twelve ships want, "
            "before the world runs out of patience.",
            "duration": 116 * 60000,
            "originally_available_at": "2016-11-10",
            "genres": ["Drama", "Science Fiction", "Mystery"],
            "directors": ["Denis Villeneuve"],
            "writers": ["Eric Heisserer"],
            "roles": ["Amy Adams", "Jeremy Renner", "Forest Whitaker"],
            "countries": ["United States of America"],
        },
    ),
]

_SEED_SHOWS: list[tuple[str, int, int, int, str, dict[int, list[str] | int], dict[str, Any]]] = [
    (
        "Breaking Bad",
        2008,
        81189,
        1396,
        "tt0903747",
        {1: _BREAKING_BAD[1], 2: _BREAKING_BAD[2]},
        {
            "studio": "AMC",
            "content_rating": "TV-MA",
            "rating": 9.6,
            "audience_rating": 9.7,
            "summary": "A chemistry teacher with a terminal diagnosis turns to making "
            "methamphetamine to provide for his family.",
            "duration": 47 * 60000,
            "originally_available_at": "2008-01-20",
            "genres": ["Drama", "Crime"],
            "directors": ["Vince Gilligan"],
            "writers": ["Vince Gilligan"],
            "roles": ["Bryan Cranston", "Aaron Paul", "Anna Gunn"],
            "countries": ["United States of America"],
        },
    ),
    (
        "The Office",
        2005,
        73244,
        2316,
        "tt0386676",
        {1: 6, 2: 22},
        {
            "studio": "NBC",
            "content_rating": "TV-14",
            "rating": 8.1,
            "audience_rating": 8.6,
            "summary": "A documentary crew follows the daily life of the employees of a paper "
            "company's branch office.",
            "duration": 22 * 60000,
            "originally_available_at": "2005-03-24",
            "genres": ["Comedy"],
            "directors": ["Ken Kwapis"],
            "writers": ["Greg Daniels"],
            "roles": ["Steve Carell", "Rainn Wilson", "John Krasinski"],
            "countries": ["United States of America"],
        },
    ),
    (
        "Stranger Things",
        2016,
        305288,
        66732,
        "tt4574334",
        {1: _STRANGER_THINGS[1]},
        {
            "studio": "Netflix",
            "content_rating": "TV-14",
            "rating": 8.6,
            "audience_rating": 8.7,
            "summary": "When a boy vanishes, a small town uncovers secret experiments and a "
            "strange girl.",
            "duration": 51 * 60000,
            "originally_available_at": "2016-07-15",
            "genres": ["Drama", "Mystery", "Sci-Fi & Fantasy"],
            "directors": ["The Duffer Brothers"],
            "writers": ["The Duffer Brothers"],
            "roles": ["Winona Ryder", "David Harbour", "Millie Bobby Brown"],
            "countries": ["United States of America"],
        },
    ),
]
