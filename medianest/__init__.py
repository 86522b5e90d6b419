"""MediaNest: one signed-in portal over Plex, Sonarr, Radarr, Tautulli, TMDB and YouTube.

This module is the public API for plugins: import what you need from here, never from
``medianest.core``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from typing import Any

__version__ = "0.1.0"

from .accounts.signin import limit_sign_in, sign_in, sign_in_problem
from .core.api import ApiModel
from .core.auth import ExternalIdentity, Permission, PermissionSpec, user_quota
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
    Metric,
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
from .core.models import JsonType, users_table
from .core.revisions import ENTRY_POINT_GROUP

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
    "JsonType",
    "MediaDetails",
    "MediaNotFound",
    "Metric",
    "NavItem",
    "Notice",
    "Permission",
    "PermissionSpec",
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
    "__version__",
    "current_user",
    "hookimpl",
    "limit_sign_in",
    "sign_in",
    "sign_in_problem",
    "site_url",
    "user_quota",
    "users_table",
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

# Names that left the public API, kept for one release: name -> (the plugin that has it now,
# its module in that plugin, the advice given).
_MOVED = {
    "YouTubeDownload": (
        "youtube",
        "models",
        "the youtube plugin owns its table now: import YouTubeDownload from its models module "
        "(medianest_plugins.youtube.models)",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        module, replacement = _DEPRECATED[name]
        warnings.warn(
            f"medianest.{name} is deprecated and goes in MediaNest 0.2: {replacement}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module, __name__), name)
    moved = _MOVED.get(name)
    if moved is None:
        raise AttributeError(f"module 'medianest' has no attribute {name!r}")
    plugin, module, advice = moved
    warnings.warn(
        f"medianest.{name} is deprecated and goes in MediaNest 0.2: {advice}",
        DeprecationWarning,
        stacklevel=2,
    )
    # Found as MediaNest finds the plugin: through its entry point.
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=plugin)
    if not found:
        raise AttributeError(f"medianest.{name} was the {plugin} plugin's, which is not installed")
    package = next(iter(found)).load()
    return getattr(importlib.import_module(f"{package.__name__}.{module}"), name)
