"""MediaNest: one signed-in portal over Plex, Sonarr, Radarr, Tautulli, TMDB and YouTube.

This module is the public API for plugins: import what you need from here, never from
``medianest.core``.
"""

from __future__ import annotations

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
from .core.models import YouTubeDownload
from .core.probe import probe

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
    "YouTubeDownload",
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
    "writing",
]
