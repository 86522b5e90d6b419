"""A fake YouTube Data API v3: ``videos``, ``playlists``, ``playlistItems``, ``channels`` and
``search``, each ``list`` under ``/youtube/v3/`` as googleapis.com serves them.

Every call needs ``key=`` (no key: Google's 403; a wrong key: its 400 "API key not valid") and
``part`` (missing: 400 ``required``; an unknown part: 400 ``unknownPart``), and answers only the
parts asked for. Lists page with ``maxResults`` and opaque ``pageToken``s; search snippets are
HTML-escaped as YouTube sends them. Each call spends quota as YouTube counts it (a list costs 1
unit, a search 100); past :attr:`FakeYouTube.daily_quota` the answer is 403 ``quotaExceeded``.

Seeded with the Blender channel, three of its open movies and a playlist of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .base import FakeServer

JSON_TYPE = "application/json; charset=UTF-8"
PARTS = {
    "videos": {
        "id", "snippet", "contentDetails", "fileDetails", "liveStreamingDetails",
        "localizations", "paidProductPlacementDetails", "player", "processingDetails",
        "recordingDetails", "statistics", "status", "suggestions", "topicDetails",
    },
    "playlists": {"id", "snippet", "status", "contentDetails", "player", "localizations"},
    "playlistItems": {"id", "snippet", "contentDetails", "status"},
    "channels": {
        "id", "snippet", "contentDetails", "statistics", "topicDetails", "status",
        "brandingSettings", "auditDetails", "contentOwnerDetails", "localizations",
    },
    "search": {"id", "snippet"},
}  # fmt: skip
COST = {"search": 100}


class GoogleError(Exception):
    """An error answer in Google's JSON error envelope."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        location: str | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
        self.domain, self.location, self.status = domain, location, status

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "message": self.message,
            "domain": self.domain,
            "reason": self.reason,
        }
        if self.location:
            error.update(location=self.location, locationType="parameter")
        body: dict[str, Any] = {"code": self.code, "message": self.message, "errors": [error]}
        if self.status:
            body["status"] = self.status
        if self.reason == "badRequest" and "API key" in self.message:
            body["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "youtube.googleapis.com"},
                }
            ]
        return web.Response(
            text=json.dumps({"error": body}, indent=2),
            status=self.code,
            headers={"Content-Type": JSON_TYPE},
        )


def _etag(value: Any) -> str:
    digest = hashlib.sha1(json.dumps(value, sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:27]


def _escape(text: str) -> str:
    """How search results carry titles: HTML-escaped, apostrophes as ``&#39;``."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _page_token(offset: int, backwards: bool = False) -> str:
    """YouTube's classic page tokens: a tiny protobuf of the offset (``CAUQAA`` is item 5)."""
    varint = bytearray()
    value = offset
    while True:
        byte, value = value & 0x7F, value >> 7
        varint.append(byte | (0x80 if value else 0))
        if not value:
            break
    raw = bytes([0x08, *varint, 0x10, 0x01 if backwards else 0x00])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if raw[0] != 0x08:
            raise ValueError(token)
        offset, shift, i = 0, 0, 1
        while True:
            offset |= (raw[i] & 0x7F) << shift
            shift += 7
            if not raw[i] & 0x80:
                break
            i += 1
        if raw[i + 1] != 0x10:
            raise ValueError(token)
        return offset
    except (ValueError, IndexError) as exc:
        raise GoogleError(
            400,
            "The request specifies an invalid page token.",
            "invalidPageToken",
            domain="youtube.parameter",
            location="pageToken",
        ) from exc


def _thumbnails(base: str, sizes: Iterable[tuple[str, str, int, int]]) -> dict[str, Any]:
    return {
        name: {"url": f"{base}/{file}", "width": width, "height": height}
        for name, file, width, height in sizes
    }


VIDEO_THUMBS = (
    ("default", "default.jpg", 120, 90),
    ("medium", "mqdefault.jpg", 320, 180),
    ("high", "hqdefault.jpg", 480, 360),
    ("standard", "sddefault.jpg", 640, 480),
    ("maxres", "maxresdefault.jpg", 1280, 720),
)


@dataclass
class Channel:
    id: str
    title: str
    description: str
    handle: str
    published_at: str
    country: str = "US"
    view_count: int = 0
    subscriber_count: int = 0
    video_count: int = 0

    @property
    def uploads(self) -> str:
        return "UU" + self.id[2:]

    def thumbnails(self) -> dict[str, Any]:
        base = f"https://yt3.ggpht.com/ytc/{self.id}"
        return {
            "default": {"url": f"{base}=s88-c-k-c0x00ffffff-no-rj", "width": 88, "height": 88},
            "medium": {"url": f"{base}=s240-c-k-c0x00ffffff-no-rj", "width": 240, "height": 240},
            "high": {"url": f"{base}=s800-c-k-c0x00ffffff-no-rj", "width": 800, "height": 800},
        }

    def parts(self) -> dict[str, Any]:
        return {
            "snippet": {
                "title": self.title,
                "description": self.description,
                "customUrl": self.handle,
                "publishedAt": self.published_at,
                "thumbnails": self.thumbnails(),
                "localized": {"title": self.title, "description": self.description},
                "country": self.country,
            },
            "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": self.uploads}},
            "statistics": {
                "viewCount": str(self.view_count),
                "subscriberCount": str(self.subscriber_count),
                "hiddenSubscriberCount": False,
                "videoCount": str(self.video_count),
            },
            "status": {
                "privacyStatus": "public",
                "isLinked": True,
                "longUploadsStatus": "longUploadsUnspecified",
                "madeForKids": False,
            },
        }


@dataclass
class Video:
    id: str
    title: str
    description: str
    channel: Channel
    published_at: str
    duration: str  # ISO 8601, e.g. PT10M35S
    tags: list[str] = field(default_factory=list)
    category_id: str = "1"
    definition: str = "hd"
    caption: bool = False
    view_count: int = 0
    like_count: int = 0
    comment_count: int = 0

    def thumbnails(self) -> dict[str, Any]:
        return _thumbnails(f"https://i.ytimg.com/vi/{self.id}", VIDEO_THUMBS)

    def parts(self) -> dict[str, Any]:
        return {
            "snippet": {
                "publishedAt": self.published_at,
                "channelId": self.channel.id,
                "title": self.title,
                "description": self.description,
                "thumbnails": self.thumbnails(),
                "channelTitle": self.channel.title,
                "tags": self.tags,
                "categoryId": self.category_id,
                "liveBroadcastContent": "none",
                "defaultAudioLanguage": "en",
                "localized": {"title": self.title, "description": self.description},
            },
            "contentDetails": {
                "duration": self.duration,
                "dimension": "2d",
                "definition": self.definition,
                "caption": "true" if self.caption else "false",
                "licensedContent": False,
                "contentRating": {},
                "projection": "rectangular",
            },
            "statistics": {
                "viewCount": str(self.view_count),
                "likeCount": str(self.like_count),
                "favoriteCount": "0",
                "commentCount": str(self.comment_count),
            },
            "status": {
                "uploadStatus": "processed",
                "privacyStatus": "public",
                "license": "creativeCommon",
                "embeddable": True,
                "publicStatsViewable": True,
                "madeForKids": False,
            },
            "player": {
                "embedHtml": (
                    f'<iframe width="480" height="270" src="//www.youtube.com/embed/{self.id}" '
                    'frameborder="0" allowfullscreen></iframe>'
                )
            },
        }


@dataclass
class Playlist:
    id: str
    title: str
    description: str
    channel: Channel
    published_at: str
    videos: list[Video] = field(default_factory=list)
    # Each video's playlist-item id in this playlist, kept stable across calls.
    item_ids: dict[str, str] = field(default_factory=dict)

    def parts(self) -> dict[str, Any]:
        thumbs = self.videos[0].thumbnails() if self.videos else {}
        return {
            "snippet": {
                "publishedAt": self.published_at,
                "channelId": self.channel.id,
                "title": self.title,
                "description": self.description,
                "thumbnails": thumbs,
                "channelTitle": self.channel.title,
                "localized": {"title": self.title, "description": self.description},
            },
            "status": {"privacyStatus": "public"},
            "contentDetails": {"itemCount": len(self.videos)},
            "player": {
                "embedHtml": (
                    '<iframe width="640" height="360" '
                    f'src="http://www.youtube.com/embed/videoseries?list={self.id}" '
                    'frameborder="0" allowfullscreen></iframe>'
                )
            },
        }

    def item_id(self, position: int) -> str:
        video_id = self.videos[position].id
        if video_id not in self.item_ids:
            raw = f"{self.id}.{secrets.token_hex(8).upper()}"
            self.item_ids[video_id] = base64.b64encode(raw.encode()).decode().rstrip("=")
        return self.item_ids[video_id]

    def item_parts(self, position: int) -> dict[str, Any]:
        video = self.videos[position]
        return {
            "snippet": {
                "publishedAt": self.published_at,
                "channelId": self.channel.id,
                "title": video.title,
                "description": video.description,
                "thumbnails": video.thumbnails(),
                "channelTitle": self.channel.title,
                "playlistId": self.id,
                "position": position,
                "resourceId": {"kind": "youtube#video", "videoId": video.id},
                "videoOwnerChannelTitle": video.channel.title,
                "videoOwnerChannelId": video.channel.id,
            },
            "contentDetails": {"videoId": video.id, "videoPublishedAt": video.published_at},
            "status": {"privacyStatus": "public"},
        }


def _resource(kind: str, rid: str, parts: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    item: dict[str, Any] = {"kind": f"youtube#{kind}", "etag": _etag([rid, parts]), "id": rid}
    item.update({name: value for name, value in parts.items() if name in wanted})
    return item


@dataclass
class FakeYouTube(FakeServer):
    """The YouTube Data API with a seeded channel, videos and playlist, and a quota."""

    key: str = field(default_factory=lambda: "AIza" + secrets.token_urlsafe(26)[:35])
    daily_quota: int = 10000
    quota_used: int = 0
    seed: bool = True
    channels: dict[str, Channel] = field(default_factory=dict)
    videos: dict[str, Video] = field(default_factory=dict)
    playlists: dict[str, Playlist] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._upload_item_ids: dict[str, dict[str, str]] = {}
        if self.seed:
            self._seed()

    # --- test controls -------------------------------------------------------------------

    def exhaust_quota(self) -> None:
        """Spend the day's quota: every further call answers 403 ``quotaExceeded``."""
        self.quota_used = self.daily_quota

    def add_video(self, video: Video) -> Video:
        self.videos[video.id] = video
        return video

    # --- the API -------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        handlers: dict[str, Callable[[web.Request, set[str]], dict[str, Any]]] = {
            "videos": self.list_videos,
            "playlists": self.list_playlists,
            "playlistItems": self.list_playlist_items,
            "channels": self.list_channels,
            "search": self.list_search,
        }
        for resource, handler in handlers.items():
            app.router.add_get(
                f"/youtube/v3/{resource}", self._endpoint(resource, handler), allow_head=False
            )

    def _endpoint(
        self, resource: str, handler: Callable[[web.Request, set[str]], dict[str, Any]]
    ) -> Callable[[web.Request], Any]:
        async def endpoint(request: web.Request) -> web.Response:
            try:
                self._check_key(request)
                self._spend(resource)
                parts = self._parts(request, resource)
                body = handler(request, parts)
            except GoogleError as exc:
                return exc.response()
            body["etag"] = _etag(body)
            return web.Response(
                text=json.dumps(body, indent=2),
                headers={"Content-Type": JSON_TYPE},
            )

        return endpoint

    def _check_key(self, request: web.Request) -> None:
        key = request.query.get("key")
        if not key:
            raise GoogleError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
                "forbidden",
                status="PERMISSION_DENIED",
            )
        if key != self.key:
            raise GoogleError(
                400,
                "API key not valid. Please pass a valid API key.",
                "badRequest",
                status="INVALID_ARGUMENT",
            )

    def _spend(self, resource: str) -> None:
        cost = COST.get(resource, 1)
        if self.quota_used + cost > self.daily_quota:
            message = (
                "The request cannot be completed because you have exceeded your "
                '<a href="/youtube/v3/getting-started#quota">quota</a>.'
            )
            raise GoogleError(403, message, "quotaExceeded", domain="youtube.quota")
        self.quota_used += cost

    def _parts(self, request: web.Request, resource: str) -> set[str]:
        parts = {
            p.strip() for value in request.query.getall("part", []) for p in value.split(",")
        } - {""}
        if not parts:
            raise GoogleError(
                400,
                "Required parameter: part",
                "required",
                location="part",
                status="INVALID_ARGUMENT",
            )
        for part in sorted(parts):
            if part not in PARTS[resource]:
                raise GoogleError(
                    400, f"'{part}'", "unknownPart", domain="youtube.part", location="part"
                )
        return parts

    @staticmethod
    def _ids(request: web.Request, name: str = "id") -> list[str]:
        return [i.strip() for value in request.query.getall(name, []) for i in value.split(",")]

    @staticmethod
    def _no_filter(*names: str) -> GoogleError:
        return GoogleError(
            400,
            f"No filter selected. Expected one of: {', '.join(names)}",
            "missingRequiredParameter",
            domain="youtube.parameter",
        )

    @staticmethod
    def _page(
        request: web.Request, kind: str, items: list[dict[str, Any]], default: int = 5
    ) -> dict[str, Any]:
        raw = request.query.get("maxResults", str(default))
        if not raw.isdigit() or int(raw) > 50:
            raise GoogleError(
                400,
                f"Invalid value '{raw}'. Values must be within the range: [0, 50]",
                "invalidParameter",
                location="maxResults",
                status="INVALID_ARGUMENT",
            )
        size = int(raw)
        token = request.query.get("pageToken")
        start = _read_page_token(token) if token else 0
        body: dict[str, Any] = {"kind": f"youtube#{kind}ListResponse", "etag": ""}
        if start + size < len(items) and size:
            body["nextPageToken"] = _page_token(start + size)
        if start > 0:
            body["prevPageToken"] = _page_token(start, backwards=True)
        body["pageInfo"] = {"totalResults": len(items), "resultsPerPage": size}
        body["items"] = items[start : start + size]
        return body

    def list_videos(self, request: web.Request, parts: set[str]) -> dict[str, Any]:
        ids = self._ids(request)
        if not ids and not request.query.get("chart") and not request.query.get("myRating"):
            raise self._no_filter("chart", "id", "myRating")
        if request.query.get("chart") == "mostPopular":
            found = sorted(self.videos.values(), key=lambda v: v.view_count, reverse=True)
        else:
            found = [self.videos[i] for i in ids if i in self.videos]
        items = [_resource("video", v.id, v.parts(), parts) for v in found]
        if ids:
            # Looking videos up by id answers them all at once, without paging.
            return {
                "kind": "youtube#videoListResponse",
                "etag": "",
                "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            }
        return self._page(request, "video", items)

    def list_channels(self, request: web.Request, parts: set[str]) -> dict[str, Any]:
        ids = self._ids(request)
        handle = request.query.get("forHandle", "").lstrip("@").lower()
        username = request.query.get("forUsername", "").lower()
        if not (ids or handle or username or request.query.get("mine")):
            raise self._no_filter(
                "categoryId", "forHandle", "forUsername", "id", "managedByMe", "mine",
                "mySubscribers",
            )  # fmt: skip
        found = [
            c
            for c in self.channels.values()
            if c.id in ids
            or (handle and c.handle.lstrip("@").lower() == handle)
            or (username and c.title.lower() == username)
        ]
        items = [_resource("channel", c.id, c.parts(), parts) for c in found]
        body = self._page(request, "channel", items)
        if not items:
            # YouTube leaves "items" out when nothing matched.
            del body["items"]
        return body

    def _all_playlists(self) -> dict[str, Playlist]:
        """The seeded playlists, plus each channel's uploads playlist."""
        result = dict(self.playlists)
        for channel in self.channels.values():
            uploads = [v for v in self.videos.values() if v.channel is channel]
            uploads.sort(key=lambda v: v.published_at, reverse=True)
            result[channel.uploads] = Playlist(
                channel.uploads,
                f"Uploads from {channel.title}",
                "",
                channel,
                channel.published_at,
                uploads,
                self._upload_item_ids.setdefault(channel.uploads, {}),
            )
        return result

    def list_playlists(self, request: web.Request, parts: set[str]) -> dict[str, Any]:
        ids, channel_id = self._ids(request), request.query.get("channelId")
        if not ids and not channel_id and not request.query.get("mine"):
            raise self._no_filter("channelId", "id", "mine")
        found = [
            p
            for p in self.playlists.values()
            if (p.id in ids or (channel_id and p.channel.id == channel_id))
        ]
        items = [_resource("playlist", p.id, p.parts(), parts) for p in found]
        return self._page(request, "playlist", items)

    def list_playlist_items(self, request: web.Request, parts: set[str]) -> dict[str, Any]:
        playlist_id, ids = request.query.get("playlistId"), self._ids(request)
        if not playlist_id and not ids:
            raise self._no_filter("id", "playlistId")
        playlists = self._all_playlists()
        if playlist_id:
            playlist = playlists.get(playlist_id)
            if playlist is None:
                raise GoogleError(
                    404,
                    "The playlist identified with the request's <code>playlistId</code> "
                    "parameter cannot be found.",
                    "playlistNotFound",
                    domain="youtube.playlistItem",
                    location="playlistId",
                )
            entries = [(playlist, n) for n in range(len(playlist.videos))]
        else:
            entries = [
                (p, n)
                for p in playlists.values()
                for n in range(len(p.videos))
                if p.item_id(n) in ids
            ]
        items = [
            _resource("playlistItem", p.item_id(n), p.item_parts(n), parts) for p, n in entries
        ]
        return self._page(request, "playlistItem", items)

    def list_search(self, request: web.Request, parts: set[str]) -> dict[str, Any]:
        query = request.query.get("q", "")
        types = {t.strip() for t in request.query.get("type", "video,channel,playlist").split(",")}
        channel_id = request.query.get("channelId")
        words = re.findall(r"\w+", query.lower())

        def hit(*texts: str) -> bool:
            have = " ".join(texts).lower()
            return all(w in have for w in words)

        results: list[tuple[str, str, dict[str, Any]]] = []
        if "video" in types:
            for v in self.videos.values():
                if hit(v.title, v.description, *v.tags) and channel_id in (None, v.channel.id):
                    snippet = v.parts()["snippet"]
                    results.append(("video", v.id, snippet))
        if "channel" in types:
            for c in self.channels.values():
                if hit(c.title, c.description) and channel_id in (None, c.id):
                    snippet = {**c.parts()["snippet"], "channelId": c.id, "channelTitle": c.title}
                    results.append(("channel", c.id, snippet))
        if "playlist" in types:
            for p in self.playlists.values():
                if hit(p.title, p.description) and channel_id in (None, p.channel.id):
                    results.append(("playlist", p.id, p.parts()["snippet"]))
        items = []
        for kind, rid, snippet in results:
            id_key = {"video": "videoId", "channel": "channelId", "playlist": "playlistId"}[kind]
            item: dict[str, Any] = {
                "kind": "youtube#searchResult",
                "etag": _etag([kind, rid]),
                "id": {"kind": f"youtube#{kind}", id_key: rid},
            }
            if "snippet" in parts:
                thumbs = snippet.get("thumbnails", {})
                item["snippet"] = {
                    "publishedAt": snippet["publishedAt"],
                    "channelId": snippet["channelId"],
                    "title": _escape(snippet["title"]),
                    "description": _escape(snippet["description"][:160]),
                    "thumbnails": {
                        k: thumbs[k] for k in ("default", "medium", "high") if k in thumbs
                    },
                    "channelTitle": _escape(snippet["channelTitle"]),
                    "liveBroadcastContent": "none",
                    "publishTime": snippet["publishedAt"],
                }
            items.append(item)
        body = self._page(request, "search", items)
        body["regionCode"] = request.query.get("regionCode", "US")
        return body

    # --- seed ----------------------------------------------------------------------------

    def _seed(self) -> None:
        blender = Channel(
            "UCSMOQeBJ2RAnuFungnQOxLg",
            "Blender",
            "Blender is the free and open source 3D creation suite. It supports the entirety "
            "of the 3D pipeline: modeling, rigging, animation, simulation, rendering, "
            "compositing and motion tracking, video editing and 2D animation.",
            "@blender",
            "2006-05-25T17:32:13Z",
            country="NL",
            view_count=163_084_221,
            subscriber_count=1_930_000,
            video_count=1684,
        )
        self.channels[blender.id] = blender
        videos = [
            Video(
                "aqz-KE-bpKQ",
                "Big Buck Bunny 60fps 4K - Official Blender Foundation Short Film",
                "Big Buck Bunny tells the story of a giant rabbit with a heart bigger than "
                "himself. When one sunny day three rodents rudely harass him, something snaps.",
                blender,
                "2014-11-10T14:05:55Z",
                "PT10M35S",
                tags=["big buck bunny", "blender", "open movie", "animation"],
                view_count=19_876_512,
                like_count=121_044,
                comment_count=8_409,
            ),
            Video(
                "eRsGyueVLvQ",
                "Sintel - Open Movie by Blender Foundation",
                "Sintel is an independently produced short film, initiated by the Blender "
                "Foundation as a means to further improve and validate the free/open source 3D "
                "creation suite Blender.",
                blender,
                "2010-09-30T18:00:15Z",
                "PT14M48S",
                tags=["sintel", "blender", "open movie", "dragon"],
                caption=True,
                view_count=8_245_118,
                like_count=96_310,
                comment_count=6_022,
            ),
            Video(
                "R6MlUcmOul8",
                "Tears of Steel - Blender Foundation's fourth Open Movie",
                "Tears of Steel was realized with crowd-funding by users of the open source 3D "
                'creation tool Blender. Project "Mango" was about visual effects.',
                blender,
                "2012-09-26T17:58:08Z",
                "PT12M14S",
                tags=["tears of steel", "blender", "open movie", "vfx"],
                caption=True,
                view_count=6_120_447,
                like_count=61_913,
                comment_count=3_870,
            ),
        ]
        for video in videos:
            self.videos[video.id] = video
        playlist = Playlist(
            "PL6B3937A5D230E335",
            "Blender Open Movies",
            "The short films made by the Blender Studio, free to watch and share.",
            blender,
            "2015-02-10T09:12:44Z",
            list(videos),
        )
        self.playlists[playlist.id] = playlist


# --- a site that serves real video files -------------------------------------------------------


def make_video(path: Any, seconds: float = 3.0, size: str = "320x240") -> bytes:
    """A short real video (test pattern and a tone, H.264 and AAC in MP4) made by ffmpeg."""
    import subprocess

    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=25",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
         "-movflags", "+faststart", str(path)],
        check=True,
        timeout=120,
    )  # fmt: skip
    with open(path, "rb") as fh:
        return fh.read()


@dataclass
class VideoSite(FakeServer):
    """Video files over HTTP, as yt-dlp's generic extractor downloads them: ``/media/<name>``
    answers the file (at ``bytes_per_second`` when set, so a test can act mid-download), and
    ``/list/<name>`` an HTML page with a ``<video>`` per file of ``playlists[name]``.

    ``completed`` counts the full transfers of each file: a file downloaded once counts 1.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    playlists: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    bytes_per_second: int = 0
    completed: dict[str, int] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/media/{name}", self.media)
        app.router.add_get("/list/{name}", self.playlist)

    async def media(self, request: web.Request) -> web.StreamResponse:
        import asyncio

        name = request.match_info["name"]
        data = self.files.get(name)
        if data is None:
            raise web.HTTPNotFound()
        response = web.StreamResponse(
            headers={"Content-Type": "video/mp4", "Content-Length": str(len(data))}
        )
        await response.prepare(request)
        chunk = 4096
        try:
            for start in range(0, len(data), chunk):
                await response.write(data[start : start + chunk])
                if self.bytes_per_second:
                    await asyncio.sleep(chunk / self.bytes_per_second)
            await response.write_eof()
        except ConnectionError:
            # The client read what it wanted (yt-dlp's first look) or went away.
            return response
        self.completed[name] = self.completed.get(name, 0) + 1
        return response

    async def playlist(self, request: web.Request) -> web.Response:
        found = self.playlists.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        title, names = found
        videos = "\n".join(f'<video src="/media/{n}"></video>' for n in names)
        return web.Response(
            text=f"<html><head><title>{title}</title></head><body>{videos}</body></html>",
            content_type="text/html",
        )
