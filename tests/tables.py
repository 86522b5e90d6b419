"""The tables a MediaNest database holds: the core's (its migrations) and the installed
plugins' (each plugin's own migrations, on a branch of its own)."""

from __future__ import annotations

import importlib.metadata

from medianest_plugins.youtube import models as youtube_models
from sqlalchemy import MetaData

from medianest.core.models import Base
from medianest.requests import models as _request_models  # noqa: F401 (their tables)

CORE_TABLES = {
    "users",
    "sessions",
    "media_items",
    "requests",
    "approvals",
    "plugin_states",
    "audit_log",
    # 0002: accounts
    "user_identities",
    "api_tokens",
    "app_state",
    # 0003: requests
    "request_seasons",
    "media_availability",
    "season_availability",
    "notifications",
}
# Each installed plugin's own tables, by plugin.
PLUGIN_TABLES = {"youtube": {"youtube_downloads"}}
METADATA: list[MetaData] = [Base.metadata, youtube_models.Base.metadata]

if importlib.metadata.entry_points(group="medianest.plugins", name="example"):
    from medianest_example import models as example_models

    PLUGIN_TABLES["example"] = {"example_pings"}
    METADATA.append(example_models.Base.metadata)

TABLES = CORE_TABLES.union(*PLUGIN_TABLES.values())
