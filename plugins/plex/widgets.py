"""The Plex widgets' loaders. They show what the coordinators read last, so viewers add no calls
to the server; who watches what is for admins."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from medianest import Fetched, PluginContext, current_user

from . import pollers
from .client import NowPlaying
from .pollers import Libraries, NotReady, Recent


def _is_admin(request: web.Request | None) -> bool:
    user = current_user(request) if request is not None else None
    return user is not None and user.is_admin


async def load_status(plugin: PluginContext) -> Fetched[Any] | NotReady:
    """The server's name, version and platform."""
    return await pollers.STATUS.latest(plugin)


async def load_now_playing(
    plugin: PluginContext, request: web.Request
) -> Fetched[NowPlaying] | NotReady:
    """Who plays what, how far, direct play or transcode, for admins; a count for others."""
    data = await pollers.SESSIONS.latest(plugin)
    if isinstance(data, NotReady) or data.value is None or _is_admin(request):
        return data
    return replace(data, value=data.value.count_only())


async def load_recent(plugin: PluginContext) -> Fetched[Recent] | NotReady:
    """The newest films, seasons and albums, with their posters."""
    return await pollers.RECENT.latest(plugin)


async def load_libraries(plugin: PluginContext) -> Fetched[Libraries] | NotReady:
    """How many films, series, episodes... each watched library holds."""
    return await pollers.LIBRARIES.latest(plugin)
