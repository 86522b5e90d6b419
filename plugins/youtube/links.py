"""What a pasted link is: checked before anything is fetched, and named for duplicate detection.

Only ``http(s)`` links to an allowed host are accepted, never ``file://`` and never a private,
loopback or link-local address (the test setting ``allow_any_host_for_tests`` lifts the host
rules, not the scheme rule).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from .settings import Settings

MAX_LENGTH = 2048
Kind = Literal["video", "playlist", "channel"]

_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_PLAYLIST_ID = re.compile(r"^[A-Za-z0-9_-]{2,64}$")
_CHANNEL_PATH = re.compile(
    r"^/(?:(@[\w.-]{1,100})|channel/(UC[\w-]{22})|c/([\w.-]+)|user/([\w.-]+))"
)


class BadLink(ValueError):
    """A link MediaNest will not download; the message says what to paste instead."""


@dataclass(frozen=True)
class Link:
    """A checked link: what it points at and an id that names it (a video id, a playlist id,
    a channel's handle or id, or the link itself for other sites)."""

    url: str
    kind: Kind
    source_id: str
    host: str


def _private(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return not address.is_global


def check(raw: str, settings: Settings) -> Link:
    """The link in ``raw``, or :class:`BadLink` saying why it cannot be downloaded."""
    text = raw.strip()
    if not text:
        raise BadLink("Paste a YouTube link, e.g. https://www.youtube.com/watch?v=…")
    if len(text) > MAX_LENGTH or any(c.isspace() for c in text):
        raise BadLink(
            f"That is not a link (a link has no spaces and at most {MAX_LENGTH} characters); "
            "paste a YouTube link, e.g. https://www.youtube.com/watch?v=…"
        )
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        raise BadLink(
            "That link cannot be read; paste it again as your browser shows it."
        ) from None
    if parts.scheme not in ("http", "https"):
        shown = f"{parts.scheme}://" if parts.scheme else "links without http(s)://"
        raise BadLink(f"Only http(s) links can be downloaded; {shown} links are refused.")
    if not host:
        raise BadLink("That link has no host; paste a YouTube link.")
    if parts.username or parts.password:
        raise BadLink("Links with a user name or password in them are refused.")
    if not settings.allow_any_host_for_tests:
        if _private(host):
            raise BadLink(
                f"{host} is a private or local address; only YouTube links can be downloaded."
            )
        if host not in settings.allowed_hosts:
            allowed = ", ".join(settings.allowed_hosts)
            raise BadLink(f"{host} is not YouTube; only links to {allowed} are accepted.")
    kind, source_id = _identify(host, parts.path, parse_qs(parts.query))
    return Link(text, kind, source_id or text, host)


def _identify(host: str, path: str, query: dict[str, list[str]]) -> tuple[Kind, str]:
    if not (host in ("youtu.be",) or host.endswith("youtube.com") or "youtube-nocookie" in host):
        return "video", ""
    video = (query.get("v") or [""])[0]
    playlist = (query.get("list") or [""])[0]
    if host == "youtu.be":
        video = path.strip("/").split("/")[0]
    for prefix in ("/shorts/", "/embed/", "/live/", "/v/"):
        if path.startswith(prefix):
            video = path[len(prefix) :].split("/")[0]
    if path.startswith("/playlist") and _PLAYLIST_ID.match(playlist):
        return "playlist", playlist
    if _VIDEO_ID.match(video):
        return "video", video
    if _PLAYLIST_ID.match(playlist):
        return "playlist", playlist
    channel = _CHANNEL_PATH.match(path)
    if channel:
        return "channel", next(g for g in channel.groups() if g)
    raise BadLink("That YouTube link names no video, playlist or channel.")
