"""The Movie Database: search, details and discovery of films and series.

A skeleton: settings, a health check and a status widget. The service work itself arrives
with the service plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from medianest import HealthResult, PluginContext, Widget, hookimpl

TEMPLATES = Path(__file__).parent / "templates"


class Settings(BaseModel):
    """Connection settings of the TMDB integration."""

    api_key: SecretStr | None = Field(default=None, title="API key (v3) or read access token (v4)")
    language: str = Field(default="en-US", title="Language")
    region: str = Field(default="US", title="Region")


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [Widget(name="status", title="TMDB", template="status.html", load=load_status)]


@hookimpl
def check_health(plugin: PluginContext) -> HealthResult:
    settings: Settings = plugin.settings
    if settings.api_key is None:
        return HealthResult("TMDB", "unconfigured", "No API key is set.")
    return HealthResult("TMDB", "ok", "An API key is set; it is checked when searches begin.")


async def load_status(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {
        "services": [
            {"name": "TMDB", "url": None if settings.api_key is None else "api.themoviedb.org"}
        ]
    }
