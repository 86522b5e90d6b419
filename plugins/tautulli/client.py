"""Every call MediaNest makes to Tautulli (API v2), and the models its answers are parsed into.

Tautulli has one endpoint, ``GET /api/v2?apikey=…&cmd=…``, and wraps every answer in an envelope
``{"response": {"result", "message", "data"}}``. The API key travels as a query parameter of
the service client, which keeps it out of logs and cache keys.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from medianest import (
    BadResponse,
    Fetched,
    HealthResult,
    PluginContext,
    ServiceClient,
    ServiceError,
    Unauthorised,
)

from .settings import Settings

SERVICE = "tautulli"
INSTANCE = "default"
LABEL = "Tautulli"
API = "/api/v2"
# How many rows the widgets show.
TOP_COUNT = 5
RECENT_COUNT = 10
STATS_DAYS = 30

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------


class TautulliError(BadResponse):
    """Tautulli answered ``result: error``; the message is Tautulli's own."""

    template = "{label} answered with an error"

    def __init__(self, label: str, message: str, status: int | None = None) -> None:
        super().__init__(label, message, status)
        self.args = (f"{label} answered with an error: {message}",)


class KeyRefused(Unauthorised):
    """Tautulli refused the API key (HTTP 401), with its reason."""

    def __init__(self, label: str, message: str, status: int | None = None) -> None:
        super().__init__(label, message, status)
        self.args = (f"{label} refused MediaNest's API key: {message}",)


def _message_of(answer: Any) -> str | None:
    """Tautulli's explanation in an error answer's envelope, if there is one."""
    if not isinstance(answer, dict) or not isinstance(answer.get("response"), dict):
        return None
    message = answer["response"].get("message")
    if not isinstance(message, str) or message in ("", "None"):
        return None
    return message if len(message) <= 200 else message[:197] + "…"


def worded(exc: ServiceError) -> ServiceError:
    """``exc`` in Tautulli's own words when its answer carried a message."""
    if isinstance(exc, TautulliError | KeyRefused):
        return exc
    message = _message_of(exc.answer)
    if message is None:
        return exc
    better: ServiceError
    if isinstance(exc, Unauthorised):
        better = KeyRefused(exc.label, message, exc.status)
    elif isinstance(exc, BadResponse):
        better = TautulliError(exc.label, message, exc.status)
    else:
        return exc
    better.at, better.answer = exc.at, exc.answer
    return better


def unwrap(body: Any, label: str = LABEL) -> Any:
    """The ``data`` of a successful envelope; a :class:`TautulliError` for ``result: error``."""
    if not isinstance(body, dict) or not isinstance(body.get("response"), dict):
        raise BadResponse(label, "not an answer of Tautulli's API")
    response = body["response"]
    if response.get("result") != "success":
        raise TautulliError(label, _message_of(body) or "no reason given")
    return response.get("data")


# --- models -------------------------------------------------------------------------------
# Tautulli sends some numbers as strings ("stream_count": "2") and missing ones as "".


def _blank_is_none(value: Any) -> Any:
    return None if value in ("", None) else value


def _blank_is_zero(value: Any) -> Any:
    return 0 if value in ("", None) else value


def _text(value: Any) -> str:
    return "" if value is None else str(value)


Count = Annotated[int, BeforeValidator(_blank_is_zero)]
MaybeInt = Annotated[int | None, BeforeValidator(_blank_is_none)]
Text = Annotated[str, BeforeValidator(_text)]

DECISIONS = {"direct play": "Direct play", "copy": "Direct stream", "transcode": "Transcode"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _episode(parent_index: int | None, index: int | None) -> str:
    if parent_index is None or index is None:
        return ""
    return f"S{parent_index:02d}E{index:02d}"


def bandwidth_text(kbps: int) -> str:
    """Tautulli reports kbps; people read Mbps."""
    return f"{kbps / 1000:.1f} Mbps" if kbps >= 1000 else f"{kbps} kbps"


def duration_text(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def ago_text(epoch: int, now: float | None = None) -> str:
    seconds = max(0, int((now if now is not None else time.time()) - epoch))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86_400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86_400
    return "yesterday" if days == 1 else f"{days} days ago"


class _Titled(_Model):
    media_type: Text = ""
    title: Text = ""
    grandparent_title: Text = ""
    full_title: Text = ""
    year: MaybeInt = None
    parent_media_index: MaybeInt = None
    media_index: MaybeInt = None

    @property
    def show(self) -> str:
        """The series an episode belongs to ("" for anything else)."""
        return self.grandparent_title if self.media_type == "episode" else ""

    @property
    def episode(self) -> str:
        """ "S05E14" for an episode."""
        if self.media_type != "episode":
            return ""
        return _episode(self.parent_media_index, self.media_index)

    @property
    def name(self) -> str:
        """The episode's or film's own title (with the film's year)."""
        if self.media_type == "movie" and self.year:
            return f"{self.title} ({self.year})"
        if self.media_type in ("episode", "movie"):
            return self.title
        return self.full_title or self.title


class Stream(_Titled):
    """One live playback session."""

    session_key: Text
    user: Text = ""
    friendly_name: Text = ""
    state: Text = ""
    progress_percent: Count = 0
    transcode_decision: Text = ""
    bandwidth: Count = 0
    quality_profile: Text = ""
    player: Text = ""
    product: Text = ""
    location: Text = ""

    @property
    def who(self) -> str:
        return self.friendly_name or self.user

    @property
    def transcoding(self) -> bool:
        return self.transcode_decision == "transcode"

    @property
    def decision(self) -> str:
        return DECISIONS.get(self.transcode_decision, self.transcode_decision.capitalize())

    @property
    def bandwidth_text(self) -> str:
        return bandwidth_text(self.bandwidth)


class Activity(_Model):
    """What the Plex server is streaming now (``get_activity``)."""

    # False when Tautulli cannot reach its Plex server (it then answers an empty ``data``).
    connected: bool = True
    stream_count: Count = 0
    direct_plays: Count = Field(0, validation_alias="stream_count_direct_play")
    direct_streams: Count = Field(0, validation_alias="stream_count_direct_stream")
    transcodes: Count = Field(0, validation_alias="stream_count_transcode")
    total_bandwidth: Count = 0
    lan_bandwidth: Count = 0
    wan_bandwidth: Count = 0
    sessions: tuple[Stream, ...] = ()
    # Whether ``sessions`` (who watches what) is included: for administrators only.
    detailed: bool = True

    configured: bool = True

    @property
    def bandwidth_text(self) -> str:
        return bandwidth_text(self.total_bandwidth)

    def counts_only(self) -> Activity:
        """The same activity without anything personal: for people who are not admins."""
        return self.model_copy(update={"sessions": (), "detailed": False})


def parse_activity(data: Any) -> Activity:
    if not data:  # Tautulli's answer when it cannot reach Plex
        return Activity.model_validate({"connected": False})
    return Activity.model_validate(data)


class MediaStat(_Model):
    """A film or series among the most watched."""

    title: Text = ""
    year: MaybeInt = None
    total_plays: Count = 0
    total_duration: Count = 0
    users_watched: MaybeInt = None

    @property
    def duration_text(self) -> str:
        return duration_text(self.total_duration)


class UserStat(_Model):
    """Someone among the most active users."""

    user: Text = ""
    friendly_name: Text = ""
    total_plays: Count = 0
    total_duration: Count = 0

    @property
    def who(self) -> str:
        return self.friendly_name or self.user

    @property
    def duration_text(self) -> str:
        return duration_text(self.total_duration)


class WatchStats(_Model):
    """The most watched films and series and the most active users (``get_home_stats``)."""

    days: int = STATS_DAYS
    movies: tuple[MediaStat, ...] = ()
    shows: tuple[MediaStat, ...] = ()
    users: tuple[UserStat, ...] = ()
    # Whether ``users`` is included: for administrators only.
    users_shown: bool = True

    configured: bool = True

    @property
    def empty(self) -> bool:
        return not (self.movies or self.shows or self.users)

    def without_people(self) -> WatchStats:
        return self.model_copy(update={"users": (), "users_shown": False})


def parse_stats(data: Any, days: int = STATS_DAYS) -> WatchStats:
    if not isinstance(data, list):
        raise ValueError("get_home_stats did not answer a list of blocks")
    rows = {block.get("stat_id"): block.get("rows") or [] for block in data}
    return WatchStats(
        days=days,
        movies=tuple(MediaStat.model_validate(r) for r in rows.get("top_movies", [])),
        shows=tuple(MediaStat.model_validate(r) for r in rows.get("top_tv", [])),
        users=tuple(UserStat.model_validate(r) for r in rows.get("top_users", [])),
    )


class Play(_Titled):
    """One finished play in the history."""

    row_id: MaybeInt = None
    user: Text = ""
    friendly_name: Text = ""
    stopped: Count = 0
    percent_complete: Count = 0
    watched_status: float = 0

    @property
    def who(self) -> str:
        return self.friendly_name or self.user

    @property
    def when(self) -> str:
        return ago_text(self.stopped)

    @property
    def finished(self) -> bool:
        return self.watched_status >= 1


class History(_Model):
    """The latest plays (``get_history``)."""

    plays: tuple[Play, ...] = ()
    total: Count = 0
    # Whether who watched is included: for administrators only.
    people_shown: bool = True

    configured: bool = True

    def without_people(self) -> History:
        plays = tuple(p.model_copy(update={"user": "", "friendly_name": ""}) for p in self.plays)
        return self.model_copy(update={"plays": plays, "people_shown": False})


def parse_history(data: Any) -> History:
    if not isinstance(data, dict):
        raise ValueError("get_history did not answer an object")
    return History(
        plays=tuple(Play.model_validate(r) for r in data.get("data") or []),
        total=data.get("recordsTotal") or 0,
    )


class TautulliInfo(_Model):
    tautulli_version: Text = ""


class ServerInfo(_Model):
    pms_name: Text = ""
    pms_version: Text = ""


# --- the client ---------------------------------------------------------------------------


class Tautulli:
    """Tautulli's commands, over one service client."""

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    @property
    def label(self) -> str:
        return self.http.config.display

    async def call(self, cmd: str, **params: Any) -> Any:
        """Run ``cmd`` now (no cache); its ``data``, or a :class:`ServiceError` in words."""
        try:
            body = await self.http.request("GET", API, params={"cmd": cmd, **params})
        except ServiceError as exc:
            raise worded(exc) from exc
        return unwrap(body, self.label)

    async def fetch(
        self, cmd: str, parse: Callable[[Any], T], *, ttl: float, **params: Any
    ) -> Fetched[T]:
        """Run ``cmd`` through the cache (one upstream call per ``ttl`` however many ask),
        parsed; on failure the last good answer with the error, never an exception."""
        got = await self.http.fetch(API, params={"cmd": cmd, **params}, ttl=ttl)
        error = worded(got.error) if got.error is not None else None
        if got.value is None:
            return Fetched(None, None, error)
        try:
            value = parse(unwrap(got.value, self.label))
        except ServiceError as exc:
            return Fetched(None, None, error or exc)
        except (ValueError, TypeError, KeyError) as exc:
            bad = BadResponse(self.label, f"unexpected {cmd} answer: {exc}")
            return Fetched(None, None, error or bad)
        return Fetched(value, got.fetched_at, error)

    # --- what the widgets show ---------------------------------------------------------

    async def activity(self, *, ttl: float) -> Fetched[Activity]:
        return await self.fetch("get_activity", parse_activity, ttl=ttl)

    async def watch_stats(self, *, ttl: float, days: int = STATS_DAYS) -> Fetched[WatchStats]:
        return await self.fetch(
            "get_home_stats",
            lambda data: parse_stats(data, days),
            ttl=ttl,
            time_range=days,
            stats_type="plays",
            stats_count=TOP_COUNT,
        )

    async def history(self, *, ttl: float, length: int = RECENT_COUNT) -> Fetched[History]:
        return await self.fetch(
            "get_history",
            parse_history,
            ttl=ttl,
            length=length,
            order_column="date",
            order_dir="desc",
        )

    # --- health ----------------------------------------------------------------------

    async def tautulli_info(self) -> TautulliInfo:
        return TautulliInfo.model_validate(await self.call("get_tautulli_info"))

    async def plex_connected(self) -> bool:
        data = await self.call("server_status")
        return bool(isinstance(data, dict) and data.get("connected"))

    async def server_info(self) -> ServerInfo:
        return ServerInfo.model_validate(await self.call("get_server_info"))

    async def health(self, *, plex_needed: bool) -> HealthResult:
        """Tautulli's own info and status calls: the key works, the version, and whether Tautulli
        reaches its Plex server (when ``plex_needed``, not reaching it is reported as degraded)."""
        started = time.perf_counter()
        try:
            info = await self.tautulli_info()
            connected = await self.plex_connected()
            server = await self.server_info() if connected else None
        except ServiceError as exc:
            if isinstance(exc, Unauthorised):
                return HealthResult(LABEL, "degraded", str(exc))
            return HealthResult(LABEL, "down", str(exc))
        latency = round((time.perf_counter() - started) * 1000, 1)
        version = info.tautulli_version or None
        name = f"Tautulli {version}" if version else "Tautulli"
        if server is None:
            return HealthResult(
                LABEL,
                "degraded" if plex_needed else "ok",
                f"{name} answers, but cannot reach its Plex server.",
                latency,
                version,
            )
        plex = server.pms_name or "its Plex server"
        if server.pms_version:
            plex += f" (Plex {server.pms_version})"
        return HealthResult(LABEL, "ok", f"{name}, watching {plex}.", latency, version)


def _connection(settings: Settings) -> dict[str, Any]:
    return {
        "service": SERVICE,
        "instance": INSTANCE,
        "base_url": str(settings.url),
        "params": {"apikey": settings.key},
        "label": LABEL,
    }


def client_for(plugin: PluginContext) -> Tautulli | None:
    """The client of the configured Tautulli, or None while it is not configured."""
    settings: Settings = plugin.settings
    if not settings.configured:
        return None
    return Tautulli(plugin.service_client(**_connection(settings)))


@asynccontextmanager
async def trial(plugin: PluginContext, settings: Settings) -> AsyncIterator[Tautulli]:
    """A client for proposed settings, closed afterwards; no retries, so a wrong address
    is reported at once."""
    async with plugin.trial_client(**_connection(settings), retries=0) as http:
        yield Tautulli(http)
