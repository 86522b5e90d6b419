"""YouTube downloads into a Plex library folder, with a queue, workers and live progress.

Users paste a link to a video, a playlist or a channel; it is checked, previewed, and
downloaded by yt-dlp in a job (``medianest worker`` processes with Redis, the web process
without), into their folder of the library, and Plex is asked to scan that folder (and to
gather a playlist's or a channel's videos in a collection named after it). Hook
implementations only: the link rules are in ``links``, previews in ``client``, the rows and
quotas in ``store``, the job in ``downloader``, the page and API in ``routes``.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import MetaData

from medianest import (
    HealthResult,
    JobType,
    Metric,
    NavItem,
    PermissionSpec,
    PluginContext,
    Poller,
    Route,
    Widget,
    hookimpl,
)

from . import downloader, models, routes, store, widgets
from .settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
ATTEMPTS = 3
RETRY_DELAY = 2.0
# How often stalled downloads are looked for and waiting ones handed to the queue.
QUEUE_INTERVAL = 5.0

__all__ = ["Settings"]


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_tables() -> MetaData:
    return models.Base.metadata


@hookimpl
def register_permissions() -> list[PermissionSpec]:
    return [
        PermissionSpec(
            routes.PERMISSION,
            "Download from YouTube",
            "Download videos, playlists and channels into their folder of the library.",
            default=True,
        )
    ]


@hookimpl
def register_metrics() -> list[Metric]:
    return [
        Metric(
            "medianest_downloads",
            "YouTube downloads by status (read from the database when scraped).",
            store.count_by_status,
            labels=("status",),
        )
    ]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(
            name="status",
            title="YouTube downloads",
            template="status.html",
            load=widgets.load_status,
            topic=store.TOPIC,
            # Each user's own downloads.
            audience="user",
        )
    ]


@hookimpl
def register_ws_topics() -> list[str]:
    return [store.TOPIC]


@hookimpl
def register_routes() -> list[Route]:
    return routes.ROUTES


@hookimpl
def register_pollers() -> list[Poller]:
    return [Poller("queue", QUEUE_INTERVAL, tend_queue)]


@hookimpl
def extra_nav_items(request: web.Request, plugin: PluginContext) -> list[NavItem]:
    return [NavItem("YouTube", "/youtube", permission=routes.PERMISSION)]


@hookimpl
def activate(plugin: PluginContext) -> None:
    settings: Settings = plugin.settings
    if plugin.jobs is not None:
        plugin.jobs.register(
            JobType(
                store.JOB,
                functools.partial(downloader.download_job, plugin),
                attempts=ATTEMPTS,
                retry_delay=RETRY_DELAY,
                heartbeat=settings.stalled_after,
            )
        )


async def tend_queue(plugin: PluginContext) -> None:
    """Fail or retry downloads whose worker died, and hand waiting ones to the queue."""
    settings: Settings = plugin.settings
    for download_id in await store.reap(plugin, ATTEMPTS):
        downloader.clear_incoming(settings, str(download_id))
    await store.dispatch(plugin)


@hookimpl
def check_health(plugin: PluginContext) -> list[HealthResult]:
    settings: Settings = plugin.settings
    results = [_library(settings)]
    if shutil.which("ffmpeg") is None:
        results.append(
            HealthResult("ffmpeg", "down", "ffmpeg is not installed; videos cannot be merged.")
        )
    else:
        results.append(HealthResult("ffmpeg", "ok", "ffmpeg is installed."))
    return results


def _library(settings: Settings) -> HealthResult:
    if not settings.library_path:
        return HealthResult("Library folder", "unconfigured", "No library folder is set.")
    path = Path(settings.library_path)
    if not path.is_dir():
        return HealthResult("Library folder", "down", f"{path} does not exist.")
    if not os.access(path, os.W_OK):
        return HealthResult("Library folder", "down", f"{path} is not writable.")
    return HealthResult("Library folder", "ok", f"Downloads go to {path}.")
