"""MediaNest: one signed-in portal over Plex, Sonarr, Radarr, Tautulli, TMDB and YouTube.

This module is the public API for plugins: import what you need from here, never from
``medianest.core``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .core.api import ApiModel
from .core.errors import ApiError
from .core.extensions import (
    Event,
    FulfilmentResult,
    HealthResult,
    NavItem,
    PluginContext,
    Poller,
    RequestInfo,
    Route,
    SearchResult,
    Widget,
)
from .core.hookspecs import hookimpl
from .core.probe import probe

__all__ = [
    "ApiError",
    "ApiModel",
    "Event",
    "FulfilmentResult",
    "HealthResult",
    "NavItem",
    "PluginContext",
    "Poller",
    "RequestInfo",
    "Route",
    "SearchResult",
    "Widget",
    "__version__",
    "hookimpl",
    "probe",
]
