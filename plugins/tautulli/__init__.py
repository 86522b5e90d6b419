"""Tautulli: what the Plex server is streaming now, watch statistics and recently watched.

Hook implementations only; the calls are in ``client``, the widgets' loaders in ``widgets``
and the background refreshes (a coordinator per widget, which also gives each its topic) in
``pollers``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from medianest import HealthResult, PluginContext, Widget, hookimpl

from . import pollers, widgets
from .client import LABEL, client_for, trial
from .settings import Settings

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(
            "activity",
            "Current activity",
            "activity.html",
            widgets.load_activity,
            coordinator=pollers.ACTIVITY,
            audience="role",
        ),
        Widget(
            "stats",
            "Watch statistics",
            "stats.html",
            widgets.load_stats,
            coordinator=pollers.STATS,
            audience="role",
        ),
        Widget(
            "history",
            "Recently watched",
            "history.html",
            widgets.load_history,
            coordinator=pollers.HISTORY,
            audience="role",
        ),
    ]


@hookimpl
async def check_connection(settings: Settings, plugin: PluginContext) -> HealthResult:
    """Try the proposed address and key for real before they are saved."""
    if settings.url is None:
        return HealthResult(LABEL, "unconfigured", "No address is set.")
    if not settings.key:
        return HealthResult(LABEL, "down", "Enter Tautulli's API key (Settings → Web Interface).")
    async with trial(plugin, settings) as client:
        return await client.health(plex_needed=False)


@hookimpl
async def check_health(plugin: PluginContext) -> HealthResult:
    client = client_for(plugin)
    if client is None:
        return HealthResult(LABEL, "unconfigured", "Set Tautulli's address and API key.")
    return await client.health(plex_needed=True)
