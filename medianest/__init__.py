"""MediaNest: one signed-in portal over Plex, Sonarr, Radarr, Tautulli, TMDB and YouTube.

This module is the public API for plugins: import what you need from here, never from
``medianest.core``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

from .accounts.signin import limit_sign_in, sign_in, sign_in_problem
from .core.api import ApiModel
from .core.auth import ExternalIdentity, Permission, user_quota
from .core.coordinator import Coordinator, CoordinatorState
from .core.db import writing
from .core.errors import ApiError
from .core.extensions import (
    Availability,
    Event,
    FulfilmentResult,
    HealthResult,
    MediaDetails,
    MediaNotFound,
    NavItem,
    Notice,
    PluginContext,
    Poller,
    Progress,
    RequestInfo,
    Route,
    SearchResult,
    SeasonAvailability,
    SeasonDetails,
    SignInProvider,
    Widget,
)
from .core.hookspecs import hookimpl
from .core.http import (
    BadResponse,
    Fetched,
    HttpAnswer,
    RateLimited,
    ServiceClient,
    ServiceError,
    Unauthorised,
)
from .core.jobs import JobRun, JobType
from .core.middleware import current_user, site_url
from .core.models import YouTubeDownload

__all__ = [
    "ApiError",
    "ApiModel",
    "Availability",
    "BadResponse",
    "Coordinator",
    "CoordinatorState",
    "Event",
    "ExternalIdentity",
    "Fetched",
    "FulfilmentResult",
    "HealthResult",
    "HttpAnswer",
    "JobRun",
    "JobType",
    "MediaDetails",
    "MediaNotFound",
    "NavItem",
    "Notice",
    "Permission",
    "PluginContext",
    "Poller",
    "Progress",
    "RateLimited",
    "RequestInfo",
    "Route",
    "SearchResult",
    "SeasonAvailability",
    "SeasonDetails",
    "ServiceClient",
    "ServiceError",
    "SignInProvider",
    "Unauthorised",
    "Widget",
    "YouTubeDownload",
    "__version__",
    "current_user",
    "hookimpl",
    "limit_sign_in",
    "sign_in",
    "sign_in_problem",
    "site_url",
    "user_quota",
    "writing",
]

# Names that left the public API, importable for one more release (0.2 drops them) with a
# DeprecationWarning that says what replaces them: (module, replacement).
_DEPRECATED = {
    "probe": (
        ".core.probe",
        "check a service with plugin.service_client(...) in check_health, or"
        " plugin.trial_client(...) in check_connection, and return a HealthResult",
    ),
    "tls_context": (
        ".core.http",
        "give aiohttp.ClientSession no ssl argument: its default context trusts the same"
        " certificate authorities (the system's, or those SSL_CERT_FILE/SSL_CERT_DIR name)",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, replacement = _DEPRECATED[name]
    warnings.warn(
        f"medianest.{name} is deprecated and goes in MediaNest 0.2: {replacement}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module, __name__), name)
