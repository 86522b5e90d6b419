"""YouTube downloads into a Plex library folder, with a queue and live progress.

A skeleton: settings, a health check and a status widget. The service work itself arrives
with the service plugins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, HttpUrl, SecretStr

from medianest import HealthResult, PluginContext, Widget, hookimpl

TEMPLATES = Path(__file__).parent / "templates"


class Settings(BaseModel):
    """Connection settings of the YouTube downloads integration."""

    library_path: str = Field(
        default="",
        title="Library folder",
        description="Where downloads land; a Plex library should point here.",
    )
    api_key: SecretStr | None = Field(
        default=None, title="YouTube Data API key", description="Optional: richer previews."
    )
    api_url: HttpUrl = Field(
        default=HttpUrl("https://www.googleapis.com"),
        title="API address",
        description="Where the YouTube Data API answers; change it only for testing",
    )


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(name="status", title="YouTube downloads", template="status.html", load=load_status)
    ]


@hookimpl
def check_health(plugin: PluginContext) -> HealthResult:
    settings: Settings = plugin.settings
    if not settings.library_path:
        return HealthResult("Library folder", "unconfigured", "No library folder is set.")
    path = Path(settings.library_path)
    if not path.is_dir():
        return HealthResult("Library folder", "down", f"{path} does not exist.")
    if not os.access(path, os.W_OK):
        return HealthResult("Library folder", "down", f"{path} is not writable.")
    return HealthResult("Library folder", "ok", f"Downloads go to {path}.")


async def load_status(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {"services": [{"name": "Library folder", "url": settings.library_path or None}]}
