"""A fake Tautulli (API v2): current streams, play history and watch statistics.

One endpoint, ``/api/v2?apikey=…&cmd=…`` (GET, or a form-encoded POST), answering every command
in Tautulli's envelope ``{"response": {"result", "message", "data"}}`` with Tautulli's HTTP
statuses: 401 for a missing or wrong ``apikey``, 400 for a missing or unknown ``cmd``, 404 when
the API is disabled. Numbers come back as strings where Tautulli sends strings
(``stream_count``, ``session_key``, ``bandwidth``) and as integers where it sends integers.

Seeded with a small Plex library, four users, two live streams and a month of history; tests
drive it with :meth:`FakeTautulli.start_stream`, :meth:`~FakeTautulli.stop_stream`,
:meth:`~FakeTautulli.set_bandwidth`, :meth:`~FakeTautulli.update_stream` and
:meth:`~FakeTautulli.add_history`.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aiohttp import web

from .base import FakeServer

JSON_TYPE = "application/json;charset=UTF-8"
DAY = 86400
# Tautulli's default "watched" thresholds (percent of the duration) per media type.
WATCHED_PERCENT = {"movie": 85, "episode": 85, "track": 85}

_QUOTES = (
    "I'll be back.",
    "Get your ass to Mars!",
    "Hasta la vista, baby.",
    "It's not a tumor!",
    "Consider that a divorce.",
    "Stick around.",
    "Who is your daddy, and what does he do?",
)


class CommandError(Exception):
    """A command answered ``result: error`` (HTTP 400) with this message."""


@dataclass
class TautulliUser:
    """A Plex user as Tautulli keeps it."""

    user_id: int
    username: str
    friendly_name: str = ""
    email: str | None = None
    is_admin: int = 0
    is_home_user: int | None = 0
    shared_libraries: str | None = "1;2"
    thumb: str | None = None
    server_token: str = field(default_factory=lambda: secrets.token_urlsafe(15))

    def __post_init__(self) -> None:
        self.friendly_name = self.friendly_name or self.username
        if self.thumb is None and self.user_id:
            self.thumb = f"https://plex.tv/users/{self.user_id:016x}/avatar?c=1700000000"

    def as_row(self, row_id: int) -> dict[str, Any]:
        """The user as ``get_users`` lists it."""
        local = self.user_id == 0
        return {
            "allow_guest": 0,
            "do_notify": 1,
            "email": self.email,
            "filter_all": None if local else "",
            "filter_movies": None if local else "",
            "filter_music": None if local else "",
            "filter_photos": None if local else "",
            "filter_tv": None if local else "",
            "friendly_name": self.friendly_name,
            "is_active": 1,
            "is_admin": self.is_admin,
            "is_allow_sync": None if local else 1,
            "is_home_user": None if local else self.is_home_user,
            "is_restricted": None if local else 0,
            "keep_history": 1,
            "row_id": row_id,
            "server_token": None if local else self.server_token,
            "shared_libraries": None if local else self.shared_libraries,
            "thumb": self.thumb,
            "user_id": self.user_id,
            "username": self.username,
        }


@dataclass
class Library:
    section_id: int
    section_name: str
    section_type: str  # movie / show / artist


@dataclass
class MediaItem:
    """Something in the Plex library that can be played: a movie, an episode or a track."""

    rating_key: int
    title: str
    media_type: str
    year: int
    duration: int  # milliseconds
    library: Library
    grandparent_title: str = ""
    parent_title: str = ""
    grandparent_rating_key: int | None = None
    parent_rating_key: int | None = None
    media_index: int | None = None
    parent_media_index: int | None = None
    content_rating: str = ""
    guid: str = ""
    originally_available_at: str = ""

    @property
    def full_title(self) -> str:
        if self.media_type == "episode":
            return f"{self.grandparent_title} - {self.title}"
        if self.media_type == "track":
            return f"{self.title} - {self.grandparent_title}"
        return self.title

    @property
    def thumb(self) -> str:
        return f"/library/metadata/{self.rating_key}/thumb/1700000000"

    @property
    def grandparent_thumb(self) -> str:
        if self.grandparent_rating_key is None:
            return ""
        return f"/library/metadata/{self.grandparent_rating_key}/thumb/1700000000"

    @property
    def parent_thumb(self) -> str:
        if self.parent_rating_key is None:
            return ""
        return f"/library/metadata/{self.parent_rating_key}/thumb/1700000000"

    @property
    def art(self) -> str:
        key = self.grandparent_rating_key or self.rating_key
        return f"/library/metadata/{key}/art/1700000000"


@dataclass
class Stream:
    """A live playback session, as ``get_activity`` reports it."""

    session_key: int
    user: TautulliUser
    media: MediaItem
    state: str = "playing"
    view_offset: int = 0  # milliseconds
    transcode_decision: str = "direct play"
    bandwidth: int = 10000  # kbps
    quality_profile: str = "Original"
    player: str = "Living Room TV"
    product: str = "Plex for Android (TV)"
    platform: str = "Android"
    device: str = "SHIELD Android TV"
    ip_address: str = "192.168.1.20"
    location: str = "lan"
    video_resolution: str = "1080"
    started: float = field(default_factory=time.time)
    session_id: str = field(default_factory=lambda: secrets.token_hex(12))
    machine_id: str = field(default_factory=lambda: secrets.token_hex(10))

    @property
    def progress_percent(self) -> int:
        if not self.media.duration:
            return 0
        return round(100 * self.view_offset / self.media.duration)

    def as_session(self) -> dict[str, Any]:
        media, user = self.media, self.user
        transcoding = self.transcode_decision == "transcode"
        stream_resolution = "720" if transcoding else self.video_resolution
        return {
            "session_key": str(self.session_key),
            "session_id": self.session_id,
            "rating_key": str(media.rating_key),
            "parent_rating_key": _s(media.parent_rating_key),
            "grandparent_rating_key": _s(media.grandparent_rating_key),
            "media_type": media.media_type,
            "title": media.title,
            "parent_title": media.parent_title,
            "grandparent_title": media.grandparent_title,
            "original_title": "",
            "full_title": media.full_title,
            "sort_title": media.title,
            "year": str(media.year),
            "media_index": _s(media.media_index),
            "parent_media_index": _s(media.parent_media_index),
            "originally_available_at": media.originally_available_at,
            "guid": media.guid,
            "content_rating": media.content_rating,
            "thumb": media.thumb,
            "parent_thumb": media.parent_thumb,
            "grandparent_thumb": media.grandparent_thumb,
            "art": media.art,
            "section_id": str(media.library.section_id),
            "library_name": media.library.section_name,
            "user": user.username,
            "username": user.username,
            "friendly_name": user.friendly_name,
            "user_id": user.user_id,
            "user_thumb": user.thumb or "",
            "email": user.email or "",
            "is_admin": user.is_admin,
            "is_home_user": user.is_home_user,
            "player": self.player,
            "product": self.product,
            "product_version": "10.9.2.5190",
            "platform": self.platform,
            "platform_name": self.platform.lower(),
            "platform_version": "14",
            "device": self.device,
            "machine_id": self.machine_id,
            "profile": "Android",
            "ip_address": self.ip_address,
            "ip_address_public": self.ip_address if self.location == "wan" else "203.0.113.7",
            "location": self.location,
            "local": 1 if self.location == "lan" else 0,
            "relayed": 0,
            "relay": 0,
            "secure": 1,
            "state": self.state,
            "view_offset": str(self.view_offset),
            "duration": str(media.duration),
            "progress_percent": str(self.progress_percent),
            "live": 0,
            "quality_profile": self.quality_profile,
            "bandwidth": str(self.bandwidth),
            "bitrate": str(self.bandwidth),
            "container": "mkv",
            "video_codec": "hevc" if media.media_type != "track" else "",
            "video_resolution": self.video_resolution if media.media_type != "track" else "",
            "video_full_resolution": (
                f"{self.video_resolution}p" if media.media_type != "track" else ""
            ),
            "video_decision": self.transcode_decision if media.media_type != "track" else "",
            "audio_codec": "eac3",
            "audio_channels": "6",
            "audio_decision": "direct play",
            "transcode_decision": self.transcode_decision,
            "stream_container": "mkv" if not transcoding else "mpegts",
            "stream_bitrate": str(self.bandwidth),
            "stream_video_codec": "h264" if transcoding else "hevc",
            "stream_video_resolution": stream_resolution,
            "stream_video_full_resolution": f"{stream_resolution}p",
            "stream_video_decision": "transcode" if transcoding else "direct play",
            "stream_audio_codec": "aac" if transcoding else "eac3",
            "stream_audio_decision": "transcode" if transcoding else "direct play",
            "transcode_key": f"/transcode/sessions/{self.session_id}" if transcoding else "",
            "transcode_throttled": 0,
            "transcode_progress": 40 if transcoding else 0,
            "transcode_speed": "2.1" if transcoding else "",
            "transcode_hw_requested": 0,
            "transcode_hw_decoding": 0,
            "transcode_hw_encoding": 0,
            "transcode_video_codec": "h264" if transcoding else "",
            "transcode_audio_codec": "aac" if transcoding else "",
            "stream_duration": str(media.duration),
            "started": str(int(self.started)),
        }


@dataclass
class Play:
    """One row of the play history."""

    row_id: int
    user: TautulliUser
    media: MediaItem
    started: int
    stopped: int
    paused_counter: int = 0
    percent_complete: int = 100
    transcode_decision: str = "direct play"
    platform: str = "Android"
    product: str = "Plex for Android (TV)"
    player: str = "Living Room TV"
    ip_address: str = "192.168.1.20"
    location: str = "lan"

    @property
    def play_duration(self) -> int:
        return max(0, self.stopped - self.started - self.paused_counter)

    @property
    def watched_status(self) -> float:
        threshold = WATCHED_PERCENT.get(self.media.media_type, 85)
        if self.percent_complete >= threshold:
            return 1
        if self.percent_complete >= threshold / 2:
            return 0.5
        return 0

    def as_row(self) -> dict[str, Any]:
        media = self.media
        return {
            "row_id": self.row_id,
            "reference_id": self.row_id,
            "id": self.row_id,
            "date": self.started,
            "started": self.started,
            "stopped": self.stopped,
            "duration": self.play_duration,
            "play_duration": self.play_duration,
            "paused_counter": self.paused_counter,
            "user_id": self.user.user_id,
            "user": self.user.username,
            "friendly_name": self.user.friendly_name,
            "user_thumb": self.user.thumb or "",
            "platform": self.platform,
            "product": self.product,
            "player": self.player,
            "ip_address": self.ip_address,
            "live": 0,
            "machine_id": "a1b2c3d4e5f6",
            "location": self.location,
            "secure": 1,
            "relayed": 0,
            "media_type": media.media_type,
            "rating_key": media.rating_key,
            "parent_rating_key": _i(media.parent_rating_key),
            "grandparent_rating_key": _i(media.grandparent_rating_key),
            "full_title": media.full_title,
            "title": media.title,
            "parent_title": media.parent_title,
            "grandparent_title": media.grandparent_title,
            "original_title": "",
            "year": media.year,
            "media_index": _i(media.media_index),
            "parent_media_index": _i(media.parent_media_index),
            "thumb": media.thumb,
            "originally_available_at": media.originally_available_at,
            "guid": media.guid,
            "transcode_decision": self.transcode_decision,
            "percent_complete": self.percent_complete,
            "watched_status": self.watched_status,
            "group_count": 1,
            "group_ids": str(self.row_id),
            "state": None,
            "session_key": None,
        }


def _s(value: int | None) -> str:
    return "" if value is None else str(value)


def _i(value: int | None) -> int | str:
    return "" if value is None else value


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name, "")
    return int(value) if value != "" else default


def human_duration(seconds: int) -> str:
    """Tautulli's way of writing a length of time: ``"2 days 5 hrs 18 mins"``."""
    days, rest = divmod(int(seconds), DAY)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    for value, one, many in ((days, "day", "days"), (hours, "hr", "hrs"), (minutes, "min", "mins")):
        if value:
            parts.append(f"{value} {one if value == 1 else many}")
    return " ".join(parts) or "0 mins"


def _day(text: str) -> date:
    return datetime.strptime(text, "%Y-%m-%d").date()


@dataclass
class FakeTautulli(FakeServer):
    """Tautulli watching a Plex server, with streams and history that tests control."""

    apikey: str = field(default_factory=lambda: secrets.token_hex(16))
    api_enabled: bool = True
    # Whether Tautulli is connected to its Plex server (``server_status``); when it is not,
    # ``get_activity`` answers an empty ``data``, as Tautulli does.
    plex_connected: bool = True
    version: str = "v2.17.2"
    pms_name: str = "Home Server"
    pms_identifier: str = field(default_factory=lambda: secrets.token_hex(20))
    pms_version: str = "1.41.3.9314-a0bfb8370"
    seed: bool = True
    users: list[TautulliUser] = field(default_factory=list)
    libraries: list[Library] = field(default_factory=list)
    media: list[MediaItem] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    history: list[Play] = field(default_factory=list)
    # How often each command was asked for, e.g. ``commands["get_activity"]``.
    commands: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._session_keys = itertools.count(40)
        self._row_ids = itertools.count(1)
        self._commands: dict[str, Callable[[Mapping[str, str]], Any]] = {
            "arnold": self.cmd_arnold,
            "get_activity": self.cmd_get_activity,
            "get_history": self.cmd_get_history,
            "get_home_stats": self.cmd_get_home_stats,
            "get_libraries": self.cmd_get_libraries,
            "get_server_friendly_name": lambda _: self.pms_name,
            "get_server_identity": self.cmd_get_server_identity,
            "get_server_info": self.cmd_get_server_info,
            "get_tautulli_info": self.cmd_get_tautulli_info,
            "get_users": self.cmd_get_users,
            "server_status": self.cmd_server_status,
            "status": self.cmd_status,
            "terminate_session": self.cmd_terminate_session,
        }
        if self.seed:
            self._seed()

    # --- test controls -------------------------------------------------------------------

    def user(self, name: str | int) -> TautulliUser:
        """A user by username, friendly name or id."""
        for user in self.users:
            if name in (user.username, user.friendly_name, user.user_id):
                return user
        raise KeyError(name)

    def item(self, title: str | int) -> MediaItem:
        """A library item by title, full title or rating key."""
        for item in self.media:
            if title in (item.title, item.full_title, item.rating_key):
                return item
        raise KeyError(title)

    def add_user(self, username: str, **fields: Any) -> TautulliUser:
        user = TautulliUser(
            user_id=fields.pop("user_id", 3219821 + 1000 * len(self.users)),
            username=username,
            **fields,
        )
        self.users.append(user)
        return user

    def add_media(self, title: str, media_type: str = "movie", **fields: Any) -> MediaItem:
        library = fields.pop("library", None) or next(
            (lib for lib in self.libraries if lib.section_type == _SECTION_TYPE[media_type]),
            None,
        )
        if library is None:
            section_type = _SECTION_TYPE[media_type]
            name = {"movie": "Movies", "show": "TV Shows", "artist": "Music"}[section_type]
            library = Library(len(self.libraries) + 1, name, section_type)
            self.libraries.append(library)
        item = MediaItem(
            rating_key=fields.pop("rating_key", 50000 + len(self.media)),
            title=title,
            media_type=media_type,
            year=fields.pop("year", 2020),
            duration=fields.pop("duration", 6_000_000),
            library=library,
            **fields,
        )
        self.media.append(item)
        return item

    def start_stream(
        self,
        user: str | int | TautulliUser,
        item: str | int | MediaItem,
        *,
        progress_percent: float = 0.0,
        **fields: Any,
    ) -> Stream:
        """Someone starts playing ``item``; returns the new session (``session_key`` is its id)."""
        who = user if isinstance(user, TautulliUser) else self.user(user)
        what = item if isinstance(item, MediaItem) else self.item(item)
        stream = Stream(
            session_key=next(self._session_keys),
            user=who,
            media=what,
            view_offset=int(what.duration * progress_percent / 100),
            **fields,
        )
        self.streams.append(stream)
        return stream

    def stream(self, session_key: int | str) -> Stream:
        for stream in self.streams:
            if str(stream.session_key) == str(session_key):
                return stream
        raise KeyError(session_key)

    def update_stream(self, session_key: int | str, **changes: Any) -> Stream:
        """Change a live session: ``state="paused"``, ``progress_percent=50``, ``bandwidth=…``."""
        stream = self.stream(session_key)
        percent = changes.pop("progress_percent", None)
        if percent is not None:
            stream.view_offset = int(stream.media.duration * percent / 100)
        for name, value in changes.items():
            if not hasattr(stream, name):
                raise AttributeError(name)
            setattr(stream, name, value)
        return stream

    def set_bandwidth(self, session_key: int | str, kbps: int) -> Stream:
        return self.update_stream(session_key, bandwidth=kbps)

    def stop_stream(self, session_key: int | str, *, record: bool = True) -> Play | None:
        """The session ends; like Tautulli, write it to the history (unless ``record=False``)."""
        stream = self.stream(session_key)
        self.streams.remove(stream)
        if not record:
            return None
        now = int(time.time())
        return self.add_history(
            stream.user,
            stream.media,
            started=int(stream.started),
            stopped=max(now, int(stream.started) + 1),
            percent_complete=stream.progress_percent,
            transcode_decision=stream.transcode_decision,
            platform=stream.platform,
            product=stream.product,
            player=stream.player,
            ip_address=stream.ip_address,
            location=stream.location,
        )

    def add_history(
        self,
        user: str | int | TautulliUser,
        item: str | int | MediaItem,
        *,
        started: float | None = None,
        stopped: float | None = None,
        days_ago: float = 0,
        **fields: Any,
    ) -> Play:
        """Record a finished play (by default one that just ended and lasted the whole item)."""
        who = user if isinstance(user, TautulliUser) else self.user(user)
        what = item if isinstance(item, MediaItem) else self.item(item)
        if stopped is None:
            stopped = time.time() - days_ago * DAY
        if started is None:
            started = stopped - what.duration / 1000
        play = Play(next(self._row_ids), who, what, int(started), int(stopped), **fields)
        self.history.append(play)
        return play

    # --- the API -------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2", self.api_v2, allow_head=False)
        app.router.add_post("/api/v2", self.api_v2)
        app.router.add_get("/api", self.api_v1, allow_head=False)

    async def api_v1(self, request: web.Request) -> web.Response:
        return _envelope("error", "Please use the /api/v2 endpoint.", {}, 200)

    async def api_v2(self, request: web.Request) -> web.Response:
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        if not self.api_enabled:
            return _envelope("error", "API not enabled", {}, 404)
        if "apikey" not in params:
            return _envelope("error", "Parameter apikey is required", {}, 401)
        if params["apikey"] != self.apikey:
            return _envelope("error", "Invalid apikey", {}, 401)
        cmd = params.get("cmd")
        if not cmd:
            return _envelope(
                "error",
                f"Parameter cmd is required. Possible commands are: {self._command_list()}",
                {},
                400,
            )
        if cmd not in self._commands:
            return _envelope(
                "error",
                f"Unknown command: {cmd}. Possible commands are: {self._command_list()}",
                {},
                400,
            )
        self.commands[cmd] += 1
        for name in ("apikey", "cmd", "out_type", "callback", "debug", "app"):
            params.pop(name, None)
        try:
            data = self._commands[cmd](params)
        except CommandError as exc:
            return _envelope("error", str(exc), {}, 400)
        except (ValueError, KeyError):
            return _envelope("error", "Check the logs for errors", {}, 500)
        message = None
        result = "success"
        # Tautulli lifts "result" and "message" out of a command's dict into the envelope.
        if isinstance(data, dict) and ("result" in data or "message" in data):
            data = dict(data)
            result = data.pop("result", result)
            message = data.pop("message", None)
        return _envelope(result, message, data, 200 if result == "success" else 400)

    def _command_list(self) -> str:
        return ", ".join(sorted(self._commands))

    # --- commands ------------------------------------------------------------------------

    def cmd_arnold(self, params: Mapping[str, str]) -> str:
        return random.choice(_QUOTES)

    def cmd_status(self, params: Mapping[str, str]) -> dict[str, Any]:
        if params.get("check") == "database":
            return {"result": "success", "message": "Database ok", "integrity_check": "ok"}
        return {"result": "success", "message": "Ok"}

    def cmd_server_status(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"result": "success", "connected": self.plex_connected}

    def cmd_get_server_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {
            "pms_identifier": self.pms_identifier,
            "pms_ip": "192.168.1.10",
            "pms_is_remote": 0,
            "pms_name": self.pms_name,
            "pms_platform": "Linux",
            "pms_plexpass": 1,
            "pms_port": 32400,
            "pms_ssl": 0,
            "pms_url": "http://192.168.1.10:32400",
            "pms_url_manual": 0,
            "pms_version": self.pms_version,
        }

    def cmd_get_server_identity(self, params: Mapping[str, str]) -> list[dict[str, str]]:
        return [{"machine_identifier": self.pms_identifier, "version": self.pms_version}]

    def cmd_get_tautulli_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {
            "tautulli_install_type": "docker",
            "tautulli_version": self.version,
            "tautulli_branch": "master",
            "tautulli_commit": "c7153deb6e3017b8dda46c8448fe548a61c5a47a",
            "tautulli_platform": "Linux",
            "tautulli_platform_release": "6.1.0",
            "tautulli_platform_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0",
            "tautulli_platform_linux_distro": "",
            "tautulli_platform_device_name": "tautulli",
            "tautulli_python_version": "3.11.2",
        }

    def cmd_get_users(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        return [user.as_row(row_id) for row_id, user in enumerate(self.users, start=1)]

    def cmd_get_libraries(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        rows = []
        for lib in self.libraries:
            items = [m for m in self.media if m.library is lib]
            parents = {m.grandparent_rating_key for m in items if m.grandparent_rating_key}
            count = len(parents) if lib.section_type in ("show", "artist") else len(items)
            rows.append(
                {
                    "section_id": str(lib.section_id),
                    "section_name": lib.section_name,
                    "section_type": lib.section_type,
                    "agent": "tv.plex.agents.movie",
                    "thumb": f"/:/resources/{lib.section_type}.png",
                    "art": f"/:/resources/{lib.section_type}-fanart.jpg",
                    "count": str(count),
                    "is_active": 1,
                    "parent_count": str(len(parents)) if parents else "",
                    "child_count": str(len(items)) if parents else "",
                }
            )
        return rows

    def cmd_get_activity(self, params: Mapping[str, str]) -> dict[str, Any]:
        if not self.plex_connected:
            return {}
        key, sid = params.get("session_key"), params.get("session_id")
        if key or sid:
            for stream in self.streams:
                if (key and str(stream.session_key) == str(int(key))) or (
                    sid and stream.session_id == sid
                ):
                    return stream.as_session()
            return {}
        sessions = [s.as_session() for s in self.streams]
        decisions = Counter(s.transcode_decision for s in self.streams)
        lan = sum(s.bandwidth for s in self.streams if s.location == "lan")
        wan = sum(s.bandwidth for s in self.streams if s.location != "lan")
        return {
            "lan_bandwidth": lan,
            "sessions": sessions,
            "stream_count": str(len(sessions)),
            "stream_count_direct_play": decisions["direct play"],
            "stream_count_direct_stream": decisions["copy"],
            "stream_count_transcode": decisions["transcode"],
            "total_bandwidth": lan + wan,
            "wan_bandwidth": wan,
        }

    def cmd_terminate_session(self, params: Mapping[str, str]) -> dict[str, Any]:
        key, sid = params.get("session_key"), params.get("session_id")
        for stream in self.streams:
            if (key and str(stream.session_key) == key) or (sid and stream.session_id == sid):
                self.stop_stream(stream.session_key)
                return {"result": "success", "message": "Session terminated."}
        return {"result": "error", "message": "Failed to terminate session: session not found."}

    def _history_rows(self, params: Mapping[str, str]) -> list[Play]:
        plays = list(self.history)
        checks: list[Callable[[Play], bool]] = []
        if params.get("user_id"):
            checks.append(lambda p: str(p.user.user_id) == params["user_id"])
        if params.get("user"):
            checks.append(lambda p: params["user"] in (p.user.username, p.user.friendly_name))
        for name in ("rating_key", "parent_rating_key", "grandparent_rating_key"):
            if params.get(name):
                checks.append(_same(name, params[name]))
        if params.get("section_id"):
            checks.append(lambda p: str(p.media.library.section_id) == params["section_id"])
        if params.get("media_type"):
            checks.append(lambda p: p.media.media_type == params["media_type"])
        if params.get("transcode_decision"):
            checks.append(lambda p: p.transcode_decision == params["transcode_decision"])
        if params.get("start_date"):
            day = _day(params["start_date"])
            checks.append(lambda p: date.fromtimestamp(p.started) == day)
        if params.get("before"):
            before = _day(params["before"])
            checks.append(lambda p: date.fromtimestamp(p.started) <= before)
        if params.get("after"):
            after = _day(params["after"])
            checks.append(lambda p: date.fromtimestamp(p.started) >= after)
        if params.get("search"):
            text = params["search"].lower()
            checks.append(
                lambda p: text in p.media.full_title.lower() or text in p.user.friendly_name.lower()
            )
        return [p for p in plays if all(check(p) for check in checks)]

    def cmd_get_history(self, params: Mapping[str, str]) -> dict[str, Any]:
        start, length = _int(params, "start", 0), _int(params, "length", 25)
        rows = self._history_rows(params)
        column = params.get("order_column") or "date"
        keys: dict[str, Callable[[Play], Any]] = {
            "date": lambda p: p.started,
            "started": lambda p: p.started,
            "stopped": lambda p: p.stopped,
            "duration": lambda p: p.play_duration,
            "paused_counter": lambda p: p.paused_counter,
            "friendly_name": lambda p: p.user.friendly_name.lower(),
            "full_title": lambda p: p.media.full_title.lower(),
            "platform": lambda p: p.platform,
            "player": lambda p: p.player,
            "ip_address": lambda p: p.ip_address,
        }
        if column not in keys:
            raise CommandError(f"Invalid order_column: {column}")
        rows.sort(key=keys[column], reverse=params.get("order_dir", "desc") != "asc")
        page = rows[start : start + length] if length >= 0 else rows[start:]
        return {
            "draw": 1,
            "recordsTotal": len(self.history),
            "recordsFiltered": len(rows),
            "total_duration": human_duration(sum(p.play_duration for p in self.history)),
            "filter_duration": human_duration(sum(p.play_duration for p in rows)),
            "data": [p.as_row() for p in page],
        }

    def cmd_get_home_stats(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        time_range = _int(params, "time_range", 30)
        stats_type = params.get("stats_type", "plays")
        by_duration = stats_type in ("duration", "1")
        sort_type = "total_duration" if by_duration else "total_plays"
        start, count = _int(params, "stats_start", 0), _int(params, "stats_count", 10)
        since = time.time() - time_range * DAY
        plays = [p for p in self.history if p.started >= since]
        if params.get("user_id"):
            plays = [p for p in plays if str(p.user.user_id) == params["user_id"]]
        if params.get("section_id"):
            plays = [p for p in plays if str(p.media.library.section_id) == params["section_id"]]
        if params.get("after"):
            plays = [p for p in plays if date.fromtimestamp(p.started) >= _day(params["after"])]
        if params.get("before"):
            plays = [p for p in plays if date.fromtimestamp(p.started) <= _day(params["before"])]
        wanted = params.get("stat_id")
        blocks = []
        for stat_id, title in _STATS:
            if wanted and stat_id != wanted:
                continue
            rows = self._stat_rows(stat_id, plays, sort_type)[start : start + count]
            block: dict[str, Any] = {"stat_id": stat_id, "stat_title": title, "rows": rows}
            if stat_id.startswith("top_"):
                block["stat_type"] = sort_type
            blocks.append(block)
        return blocks

    def _stat_rows(self, stat_id: str, plays: list[Play], sort_type: str) -> list[dict[str, Any]]:
        kind = stat_id.split("_", 1)[1]
        if kind in ("movies", "tv", "music"):
            media_type = {"movies": "movie", "tv": "episode", "music": "track"}[kind]
            mine = [p for p in plays if p.media.media_type == media_type]
            grouped = _group(mine, lambda p: p.media.grandparent_rating_key or p.media.rating_key)
            rows = [_media_row(group, kind) for group in grouped]
            if stat_id.startswith("popular_"):
                rows.sort(key=lambda r: (r["users_watched"], r["total_plays"]), reverse=True)
            else:
                rows.sort(key=lambda r: (r[sort_type], r["last_play"]), reverse=True)
            return rows
        if stat_id == "last_watched":
            recent = sorted(
                (p for p in plays if p.media.media_type in ("movie", "episode")),
                key=lambda p: p.stopped,
                reverse=True,
            )
            return [_last_watched_row(p) for p in recent]
        if stat_id == "top_users":
            rows = [_user_row(group) for group in _group(plays, lambda p: p.user.user_id)]
        elif stat_id == "top_platforms":
            rows = [_platform_row(group) for group in _group(plays, lambda p: p.platform)]
        elif stat_id == "top_libraries":
            rows = [
                _library_row(group) for group in _group(plays, lambda p: p.media.library.section_id)
            ]
        else:
            return _most_concurrent(plays)
        rows.sort(key=lambda r: (r[sort_type], r["last_play"]), reverse=True)
        return rows

    # --- seed ----------------------------------------------------------------------------

    def _seed(self) -> None:
        self.users.extend(
            [
                TautulliUser(0, "Local", "Local", thumb=None),
                TautulliUser(3219821, "mediaowner", "Media Owner", "owner@example.com", 1, 0),
                TautulliUser(8008135, "alice", "Alice", "alice@example.com", 0, 1),
                TautulliUser(8008136, "bob", "Bob", "bob@example.com", 0, 0, "1"),
            ]
        )
        movies, tv, music = (
            Library(1, "Movies", "movie"),
            Library(2, "TV Shows", "show"),
            Library(3, "Music", "artist"),
        )
        self.libraries.extend([movies, tv, music])
        for rating_key, title, year, minutes, rating, tmdb in _MOVIES:
            self.media.append(
                MediaItem(
                    rating_key,
                    title,
                    "movie",
                    year,
                    minutes * 60_000,
                    movies,
                    content_rating=rating,
                    guid=f"plex://movie/{tmdb:024x}",
                    originally_available_at=f"{year}-03-31",
                )
            )
        for show_key, show, tvdb, episodes in _SHOWS:
            for season, index, title, aired in episodes:
                self.media.append(
                    MediaItem(
                        show_key + 100 * season + index,
                        title,
                        "episode",
                        int(aired[:4]),
                        47 * 60_000,
                        tv,
                        grandparent_title=show,
                        parent_title=f"Season {season}",
                        grandparent_rating_key=show_key,
                        parent_rating_key=show_key + 100 * season,
                        media_index=index,
                        parent_media_index=season,
                        content_rating="TV-MA",
                        guid=f"plex://episode/{tvdb:016x}{season:04x}{index:04x}",
                        originally_available_at=aired,
                    )
                )
        self.media.append(
            MediaItem(
                90001,
                "Everything In Its Right Place",
                "track",
                2000,
                251_000,
                music,
                grandparent_title="Radiohead",
                parent_title="Kid A",
                grandparent_rating_key=90000,
                parent_rating_key=90010,
                media_index=1,
                parent_media_index=1,
            )
        )
        # A month of plays, a few a day, spread over the users.
        rng = random.Random(8181)
        now = time.time()
        watchers = self.users[1:]
        playable = [m for m in self.media if m.media_type != "track"]
        for day in range(1, 29, 2):
            for _ in range(2):
                who, what = rng.choice(watchers), rng.choice(playable)
                stopped = now - day * DAY + rng.randint(0, 6 * 3600)
                self.add_history(
                    who,
                    what,
                    stopped=stopped,
                    percent_complete=rng.choice([100, 100, 96, 64, 20]),
                    transcode_decision=rng.choice(["direct play", "direct play", "transcode"]),
                    platform=rng.choice(["Android", "Chrome", "Roku", "iOS"]),
                )
        self.history.sort(key=lambda p: p.started)
        for row_id, play in enumerate(self.history, start=1):
            play.row_id = row_id
        self._row_ids = itertools.count(len(self.history) + 1)
        self.start_stream("alice", "Ozymandias", progress_percent=38, state="playing")
        self.start_stream(
            "bob",
            "Dune: Part Two",
            progress_percent=71,
            transcode_decision="transcode",
            quality_profile="4 Mbps 720p",
            bandwidth=4200,
            player="Chrome",
            product="Plex Web",
            platform="Chrome",
            device="Linux",
            ip_address="198.51.100.23",
            location="wan",
            video_resolution="4k",
        )


_SECTION_TYPE = {"movie": "movie", "episode": "show", "track": "artist"}

_STATS = (
    ("top_movies", "Most Watched Movies"),
    ("popular_movies", "Most Popular Movies"),
    ("top_tv", "Most Watched TV Shows"),
    ("popular_tv", "Most Popular TV Shows"),
    ("top_music", "Most Played Artists"),
    ("popular_music", "Most Popular Artists"),
    ("last_watched", "Recently Watched"),
    ("top_libraries", "Most Active Libraries"),
    ("top_users", "Most Active Users"),
    ("top_platforms", "Most Active Platforms"),
    ("most_concurrent", "Most Concurrent Streams"),
)

# rating key, title, year, minutes, content rating, TMDB id
_MOVIES = (
    (1001, "The Matrix", 1999, 136, "R", 603),
    (1002, "Inception", 2010, 148, "PG-13", 27205),
    (1003, "Interstellar", 2014, 169, "PG-13", 157336),
    (1004, "Dune: Part Two", 2024, 166, "PG-13", 693134),
)

# show rating key, show, TVDB id, [(season, episode, title, aired)]
_SHOWS = (
    (
        2000,
        "Breaking Bad",
        81189,
        [
            (1, 1, "Pilot", "2008-01-20"),
            (5, 14, "Ozymandias", "2013-09-15"),
            (5, 16, "Felina", "2013-09-29"),
        ],
    ),
    (
        3000,
        "The Last of Us",
        392256,
        [
            (1, 1, "When You're Lost in the Darkness", "2023-01-15"),
            (1, 3, "Long, Long Time", "2023-01-29"),
        ],
    ),
)


def _envelope(result: str, message: str | None, data: Any, status: int) -> web.Response:
    body = {"response": {"result": result, "message": message, "data": data}}
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        headers={"Content-Type": JSON_TYPE},
    )


def _same(attribute: str, value: str) -> Callable[[Play], bool]:
    return lambda play: str(getattr(play.media, attribute)) == value


def _group(plays: Iterable[Play], key: Callable[[Play], Any]) -> list[list[Play]]:
    groups: dict[Any, list[Play]] = defaultdict(list)
    for play in plays:
        groups[key(play)].append(play)
    return list(groups.values())


def _totals(group: list[Play]) -> dict[str, Any]:
    last = max(group, key=lambda p: p.stopped)
    return {
        "total_plays": len(group),
        "total_duration": sum(p.play_duration for p in group),
        "last_play": last.stopped,
        "row_id": last.row_id,
    }


def _media_row(group: list[Play], kind: str) -> dict[str, Any]:
    last = max(group, key=lambda p: p.stopped)
    media = last.media
    show = kind != "movies"
    return {
        "title": media.grandparent_title if show else media.title,
        "year": media.year,
        "users_watched": len({p.user.user_id for p in group}),
        "rating_key": media.grandparent_rating_key if show else media.rating_key,
        "grandparent_rating_key": media.grandparent_rating_key if show else "",
        "thumb": media.grandparent_thumb if show else media.thumb,
        "grandparent_thumb": media.grandparent_thumb if show else "",
        "art": media.art,
        "section_id": media.library.section_id,
        "media_type": media.media_type,
        "content_rating": media.content_rating,
        "labels": [],
        "user": "",
        "friendly_name": "",
        "platform_type": "",
        "platform": "",
        "live": 0,
        "guid": media.guid,
        **_totals(group),
    }


def _last_watched_row(play: Play) -> dict[str, Any]:
    media = play.media
    return {
        "title": media.full_title,
        "year": media.year,
        "rating_key": media.rating_key,
        "grandparent_rating_key": _i(media.grandparent_rating_key),
        "thumb": media.thumb,
        "grandparent_thumb": media.grandparent_thumb,
        "art": media.art,
        "section_id": media.library.section_id,
        "media_type": media.media_type,
        "content_rating": media.content_rating,
        "labels": [],
        "user": play.user.username,
        "user_id": play.user.user_id,
        "friendly_name": play.user.friendly_name,
        "user_thumb": play.user.thumb or "",
        "platform": play.platform,
        "player": play.player,
        "live": 0,
        "guid": media.guid,
        "last_watch": play.stopped,
        "row_id": play.row_id,
    }


def _user_row(group: list[Play]) -> dict[str, Any]:
    user = group[0].user
    return {
        "user": user.username,
        "user_id": user.user_id,
        "friendly_name": user.friendly_name,
        "user_thumb": user.thumb or "",
        "grandparent_thumb": "",
        "art": "",
        "users_watched": "",
        "rating_key": "",
        "title": "",
        "platform_type": "",
        "platform": "",
        **_totals(group),
    }


def _platform_row(group: list[Play]) -> dict[str, Any]:
    platform = group[0].platform
    return {
        "platform": platform,
        "platform_name": platform.lower(),
        "grandparent_thumb": "",
        "art": "",
        "users_watched": "",
        "rating_key": "",
        "title": "",
        "user": "",
        "friendly_name": "",
        **_totals(group),
    }


def _library_row(group: list[Play]) -> dict[str, Any]:
    library = group[0].media.library
    return {
        "section_id": library.section_id,
        "section_name": library.section_name,
        "section_type": library.section_type,
        "thumb": f"/:/resources/{library.section_type}.png",
        "grandparent_thumb": "",
        "art": "",
        "users_watched": "",
        "rating_key": "",
        "title": "",
        "user": "",
        "friendly_name": "",
        **_totals(group),
    }


def _most_concurrent(plays: list[Play]) -> list[dict[str, Any]]:
    rows = []
    for title, keep in (
        ("Concurrent Streams", lambda p: True),
        ("Concurrent Transcodes", lambda p: p.transcode_decision == "transcode"),
        ("Concurrent Direct Streams", lambda p: p.transcode_decision == "copy"),
        ("Concurrent Direct Plays", lambda p: p.transcode_decision == "direct play"),
    ):
        mine = [p for p in plays if keep(p)]
        best, when = 0, (0, 0)
        for play in mine:
            overlapping = [p for p in mine if p.started <= play.started < p.stopped]
            if len(overlapping) > best:
                best = len(overlapping)
                when = (play.started, min(p.stopped for p in overlapping))
        if best:
            rows.append({"title": title, "count": best, "started": when[0], "stopped": when[1]})
    return rows
