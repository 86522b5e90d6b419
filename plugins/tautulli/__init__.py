"""Tautulli: current activity and watch statistics of the Plex server.

A skeleton: settings, a health check and a status widget. The service work itself arrives
with the service plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, HttpUrl, SecretStr

from medianest import HealthResult, PluginContext, Widget, hookimpl, probe

TEMPLATES = Path(__file__).parent / "templates"


class Settings(BaseModel):
    """Connection settings of the Tautulli integration."""

    url: HttpUrl | None = Field(
        default=None, title="Tautulli URL", description="e.g. http://localhost:8181"
    )
    api_key: SecretStr | None = Field(default=None, title="API key")


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [Widget(name="status", title="Tautulli", template="status.html", load=load_status)]


@hookimpl
async def check_health(plugin: PluginContext) -> HealthResult:
    settings: Settings = plugin.settings
    return await probe("Tautulli", str(settings.url) if settings.url else None)


async def load_status(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {"services": [{"name": "Tautulli", "url": str(settings.url) if settings.url else None}]}
