"""Previews: what a link points at, before anything is downloaded.

With a YouTube Data API v3 key, from the API (``videos``, ``playlists``, ``playlistItems``,
``channels``) through the plugin's service client; without one, or for a link the API does
not describe, from yt-dlp's metadata extraction (in a thread: it blocks).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import BaseModel

from medianest import PluginContext, ServiceClient, ServiceError

from .links import Link
from .settings import Settings

SERVICE = "youtube"
LABEL = "YouTube Data API"
PREVIEW_TTL = 600.0
MAX_ITEMS = 50
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class PreviewItem(BaseModel):
    title: str
    duration: int | None = None


class Preview(BaseModel):
    """What a link points at: a video, or a playlist or channel and its videos."""

    kind: str
    title: str
    channel: str = ""
    duration: int | None = None
    thumbnail: str | None = None
    items: list[PreviewItem] = []
    source: str = "yt-dlp"


def iso_seconds(value: str | None) -> int | None:
    """ISO 8601 durations as YouTube writes them (PT10M35S) in seconds."""
    match = _DURATION.match(value or "")
    if not match:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def connection(settings: Settings) -> dict[str, Any]:
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    return {
        "service": SERVICE,
        "instance": "default",
        "base_url": str(settings.api_url).rstrip("/") + "/youtube/v3",
        "params": {"key": key} if key else {},
        "label": LABEL,
    }


def _thumb(snippet: dict[str, Any]) -> str | None:
    thumbs = snippet.get("thumbnails") or {}
    for size in ("high", "medium", "standard", "default"):
        if size in thumbs:
            return str(thumbs[size]["url"])
    return None


async def _api_preview(http: ServiceClient, link: Link) -> Preview | None:
    if link.kind == "video":
        answer = await http.get(
            "/videos",
            params={"part": "snippet,contentDetails", "id": link.source_id},
            ttl=PREVIEW_TTL,
        )
        items = answer.get("items") or []
        if not items:
            return None
        video = items[0]
        return Preview(
            kind="video",
            title=video["snippet"]["title"],
            channel=video["snippet"].get("channelTitle", ""),
            duration=iso_seconds(video.get("contentDetails", {}).get("duration")),
            thumbnail=_thumb(video["snippet"]),
            source="api",
        )
    if link.kind == "channel":
        handle = link.source_id
        params = {"part": "snippet,contentDetails"}
        params |= {"forHandle": handle} if handle.startswith("@") else {"id": handle}
        answer = await http.get("/channels", params=params, ttl=PREVIEW_TTL)
        channels = answer.get("items") or []
        if not channels:
            return None
        channel = channels[0]
        uploads = channel["contentDetails"]["relatedPlaylists"]["uploads"]
        items = await _playlist_items(http, uploads)
        return Preview(
            kind="channel",
            title=channel["snippet"]["title"],
            channel=channel["snippet"]["title"],
            thumbnail=_thumb(channel["snippet"]),
            items=items,
            source="api",
        )
    answer = await http.get(
        "/playlists", params={"part": "snippet", "id": link.source_id}, ttl=PREVIEW_TTL
    )
    playlists = answer.get("items") or []
    if not playlists:
        return None
    playlist = playlists[0]
    return Preview(
        kind="playlist",
        title=playlist["snippet"]["title"],
        channel=playlist["snippet"].get("channelTitle", ""),
        thumbnail=_thumb(playlist["snippet"]),
        items=await _playlist_items(http, link.source_id),
        source="api",
    )


async def _playlist_items(http: ServiceClient, playlist_id: str) -> list[PreviewItem]:
    answer = await http.get(
        "/playlistItems",
        params={"part": "snippet,contentDetails", "playlistId": playlist_id, "maxResults": "50"},
        ttl=PREVIEW_TTL,
    )
    entries = answer.get("items") or []
    ids = [e["contentDetails"]["videoId"] for e in entries if "contentDetails" in e]
    durations: dict[str, int | None] = {}
    if ids:
        videos = await http.get(
            "/videos", params={"part": "contentDetails", "id": ",".join(ids)}, ttl=PREVIEW_TTL
        )
        for v in videos.get("items") or []:
            durations[v["id"]] = iso_seconds(v.get("contentDetails", {}).get("duration"))
    return [
        PreviewItem(
            title=e["snippet"]["title"],
            duration=durations.get(e.get("contentDetails", {}).get("videoId", "")),
        )
        for e in entries[:MAX_ITEMS]
    ]


class NothingToDownload(Exception):
    """yt-dlp found nothing to download at a link; the message is yt-dlp's, saying why."""


def _ytdlp_preview(url: str) -> Preview:
    # yt-dlp loads every site's extractor: imported by the first preview (in its thread), not
    # when the plugin loads.
    import yt_dlp

    params = {
        "quiet": True,
        "no_warnings": True,
        "skip_download": True,
        "extract_flat": "in_playlist",
        "playlistend": MAX_ITEMS,
        "socket_timeout": 20,
    }
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.sanitize_info(ydl.extract_info(url, download=False)) or {}
    except yt_dlp.utils.DownloadError as exc:
        raise NothingToDownload(str(exc)) from exc
    entries = [e for e in info.get("entries") or [] if e]
    is_list = info.get("_type") == "playlist" or bool(entries)
    return Preview(
        kind="playlist" if is_list else "video",
        title=info.get("title") or url,
        channel=info.get("channel") or info.get("uploader") or "",
        duration=int(info["duration"]) if info.get("duration") else None,
        thumbnail=info.get("thumbnail"),
        items=[
            PreviewItem(
                title=e.get("title") or e.get("id") or "",
                duration=int(e["duration"]) if e.get("duration") else None,
            )
            for e in entries
        ],
    )


async def preview(plugin: PluginContext, link: Link) -> Preview:
    """What ``link`` points at; raises ServiceError (API) or NothingToDownload (yt-dlp)."""
    settings: Settings = plugin.settings
    if settings.api_key is not None and "youtu" in link.host:
        try:
            found = await _api_preview(plugin.service_client(**connection(settings)), link)
        except ServiceError as exc:
            plugin.log.warning("YouTube Data API preview failed, using yt-dlp: %s", exc)
            found = None
        if found is not None:
            return found
    return await asyncio.to_thread(_ytdlp_preview, link.url)
