"""The downloads page and the JSON API: preview, submit, list, cancel and retry.

Every route needs the plugin's own "youtube" permission; users see and change only their own
downloads.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, Field

from medianest import ApiError, ApiModel, PluginContext, Route, current_user

from . import client, links, store
from .downloader import QUALITIES
from .settings import Settings

STATIC = Path(__file__).parent / "static"
# The plugin's own permission (declared in register_permissions); users who held it when it was
# the core's keep it: a permission is stored by name.
PERMISSION = "youtube"
Quality = Literal["best", "2160p", "1440p", "1080p", "720p", "480p", "360p"]


class LinkBody(ApiModel):
    # Long enough for any link; what is too long is refused with words, not a schema error.
    url: str = Field(max_length=100_000, description="A YouTube video, playlist or channel")


class DownloadBody(LinkBody):
    quality: Quality = Field(default="best", description="The highest video quality wanted")
    container: Literal["mp4", "mkv"] = Field(default="mp4", description="The video file's format")
    audio_only: bool = Field(default=False, description="Keep only the sound (an .m4a file)")
    title: str = Field(default="", max_length=500, description="The title the preview showed")


class Download(BaseModel):
    """One of the user's downloads, as the row says now."""

    id: uuid.UUID
    url: str
    kind: str
    title: str
    status: str = Field(description="waiting, queued, downloading, completed, failed or cancelled")
    reason: str | None
    percent: float
    item: int
    items: int
    size_kib: int
    attempts: int
    options: dict[str, Any]
    files: list[str] = Field(description="The names of the files placed in the library")
    created_at: datetime
    finished_at: datetime | None


class DownloadList(BaseModel):
    downloads: list[Download]


def _out(row: dict[str, Any]) -> Download:
    options = {k: v for k, v in (row["options"] or {}).items() if k != "user"}
    return Download(
        **{k: row[k] for k in Download.model_fields if k not in ("options", "files")},
        options=options,
        files=[Path(f).name for f in row["files"] or []],
    )


def _user(request: web.Request) -> Any:
    user = current_user(request)
    if user is None:
        raise ApiError(401, "Sign in first (or send an API token).")
    return user


def _check(plugin: PluginContext, url: str) -> links.Link:
    try:
        return links.check(url, plugin.settings)
    except links.BadLink as exc:
        raise ApiError(400, str(exc)) from None


async def _own(request: web.Request, plugin: PluginContext) -> dict[str, Any]:
    user = _user(request)
    try:
        download_id = uuid.UUID(request.match_info["download_id"])
    except ValueError:
        raise ApiError(404, "There is no such download.") from None
    row = await store.get(plugin, download_id)
    if row is None or row["user_id"] != user.id:
        raise ApiError(404, "There is no such download.")
    return row


async def page(request: web.Request, plugin: PluginContext) -> web.StreamResponse:
    """The downloads page: the form, the preview, and the user's downloads, live."""
    user = _user(request)
    settings: Settings = plugin.settings
    rows = await store.of_user(plugin, user.id)
    return aiohttp_jinja2.render_template(
        "youtube/downloads.html",
        request,
        {
            "configured": bool(settings.library_path),
            "downloads": [_out(r) for r in rows],
            "qualities": QUALITIES,
        },
    )


async def script(request: web.Request) -> web.StreamResponse:
    """The page's script (the content security policy allows scripts from this site only)."""
    return web.FileResponse(
        STATIC / "downloads.js",
        headers={"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache"},
    )


async def preview(body: LinkBody, plugin: PluginContext) -> client.Preview:
    """What a link points at: title, channel, duration, thumbnail, and a playlist's items."""
    link = _check(plugin, body.url)
    try:
        return await client.preview(plugin, link)
    except client.NothingToDownload as exc:
        message = str(exc).removeprefix("ERROR: ")
        raise ApiError(422, f"Nothing to download at that link: {message}") from None


async def submit(request: web.Request, body: DownloadBody, plugin: PluginContext) -> Download:
    """Queue a download (refused when it repeats one of yours or passes your quotas)."""
    user = _user(request)
    settings: Settings = plugin.settings
    link = _check(plugin, body.url)
    if not settings.library_path:
        raise ApiError(409, "No library folder is set yet; an administrator sets one.")
    options = {"quality": body.quality, "container": body.container, "audio_only": body.audio_only}
    row = await store.admit(plugin, user.id, user.username, link, body.title.strip(), options)
    return _out(row)


async def list_downloads(request: web.Request, plugin: PluginContext) -> DownloadList:
    """Your downloads, newest first."""
    user = _user(request)
    return DownloadList(downloads=[_out(r) for r in await store.of_user(plugin, user.id)])


async def one(request: web.Request, plugin: PluginContext) -> Download:
    """One of your downloads."""
    return _out(await _own(request, plugin))


async def cancel(request: web.Request, plugin: PluginContext) -> Download:
    """Cancel a download that has not finished; what it downloaded so far is removed."""
    row = await _own(request, plugin)
    if row["status"] in store.FINISHED:
        raise ApiError(409, f"This download is already {row['status']}.")
    await store.change(
        plugin, row["id"], when=store.ACTIVE, status="cancelled", reason="Cancelled by you.",
        finished_at=store.now(),
    )  # fmt: skip
    if plugin.jobs is not None:
        await plugin.jobs.abort(str(row["id"]), "cancelled by its user")
    row = await store.get(plugin, row["id"]) or row
    await store.announce(plugin, row)
    await store.dispatch(plugin, row["user_id"])
    return _out(row)


async def retry(request: web.Request, plugin: PluginContext) -> Download:
    """Try a failed or cancelled download again."""
    row = await _own(request, plugin)
    if row["status"] not in ("failed", "cancelled"):
        raise ApiError(
            409, f"Only a failed or cancelled download can be retried; this one is {row['status']}."
        )
    await store.change(
        plugin, row["id"], when=("failed", "cancelled"), status="waiting", reason=None,
        percent=0.0, item=0, items=0, attempts=0, finished_at=None,
    )  # fmt: skip
    await store.dispatch(plugin, row["user_id"])
    return _out(await store.get(plugin, row["id"]) or row)


ONE = "/api/v1/youtube/downloads/{download_id}"
ROUTES = [
    Route("GET", "/youtube", page, include_in_schema=False, access=PERMISSION),
    Route("GET", "/youtube/downloads.js", script, include_in_schema=False, access=PERMISSION),
    Route(
        "POST", "/api/v1/youtube/preview", preview, body=LinkBody, response=client.Preview,
        access=PERMISSION,
    ),
    Route(
        "POST", "/api/v1/youtube/downloads", submit, body=DownloadBody, response=Download,
        access=PERMISSION,
    ),
    Route(
        "GET", "/api/v1/youtube/downloads", list_downloads, response=DownloadList,
        access=PERMISSION,
    ),
    Route("GET", ONE, one, response=Download, access=PERMISSION),
    Route("DELETE", ONE, cancel, response=Download, access=PERMISSION),
    Route("POST", ONE + "/retry", retry, response=Download, access=PERMISSION),
]  # fmt: skip
