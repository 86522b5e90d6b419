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
    tls_context,
)
from .core.jobs import JobRun, JobType
from .core.middleware import current_user, site_url
from .core.models import JsonType, users_table
from .core.probe import probe
from .core.revisions import ENTRY_POINT_GROUP

__all__ = [
    "ApiError",
    "ApiModel",
    "Availability",
    "BadResponse",
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
    "probe",
    "sign_in",
    "sign_in_problem",
    "site_url",
    "tls_context",
    "user_quota",
    "users_table",
    "writing",
]


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
    moved = _MOVED.get(name)
    if moved is None:
        raise AttributeError(f"module 'medianest' has no attribute {name!r}")
    plugin, module, advice = moved
    warnings.warn(
        f"medianest.{name} is deprecated and goes in the next release: {advice}",
        DeprecationWarning,
        stacklevel=2,
    )
    # Found as MediaNest finds the plugin: through its entry point.
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=plugin)
    if not found:
        raise AttributeError(f"medianest.{name} was the {plugin} plugin's, which is not installed")
    package = next(iter(found)).load()
    return getattr(importlib.import_module(f"{package.__name__}.{module}"), name)
