"""The Tautulli widgets' loaders. They show what the coordinators read last, so viewers add no
upstream calls; who watches what is for admins."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from medianest import Fetched, PluginContext, current_user

from . import pollers
from .client import Activity, History, WatchStats


@dataclass(frozen=True)
class NotConfigured:
    """What a widget shows before Tautulli's address and key are saved."""

    configured: bool = False


NOT_CONFIGURED = NotConfigured()


def _is_admin(request: web.Request | None) -> bool:
    user = current_user(request) if request is not None else None
    return user is not None and user.is_admin


def _shown(fetched: Fetched[Any], request: web.Request | None, strip: Any) -> Fetched[Any]:
    if fetched.value is None or _is_admin(request):
        return fetched
    return replace(fetched, value=strip(fetched.value))


async def load_activity(
    plugin: PluginContext, request: web.Request
) -> Fetched[Activity] | NotConfigured:
    """Streams, transcodes and bandwidth for everyone; who watches what for admins."""
    fetched = await pollers.ACTIVITY.latest(plugin)
    if fetched is None:
        return NOT_CONFIGURED
    return _shown(fetched, request, Activity.counts_only)


async def load_stats(
    plugin: PluginContext, request: web.Request
) -> Fetched[WatchStats] | NotConfigured:
    """The most watched films and series; the most active users for admins only."""
    fetched = await pollers.STATS.latest(plugin)
    if fetched is None:
        return NOT_CONFIGURED
    return _shown(fetched, request, WatchStats.without_people)


async def load_history(
    plugin: PluginContext, request: web.Request
) -> Fetched[History] | NotConfigured:
    """What was watched lately; who watched it for admins only."""
    fetched = await pollers.HISTORY.latest(plugin)
    if fetched is None:
        return NOT_CONFIGURED
    return _shown(fetched, request, History.without_people)
