"""Sonarr and Radarr: download queues, calendars, and fulfilment of approved requests.

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
    """Connection settings of the Sonarr & Radarr integration."""

    sonarr_url: HttpUrl | None = Field(
        default=None, title="Sonarr URL", description="e.g. http://localhost:8989"
    )
    sonarr_api_key: SecretStr | None = Field(default=None, title="Sonarr API key")
    radarr_url: HttpUrl | None = Field(
        default=None, title="Radarr URL", description="e.g. http://localhost:7878"
    )
    radarr_api_key: SecretStr | None = Field(default=None, title="Radarr API key")


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(name="status", title="Sonarr & Radarr", template="status.html", load=load_status)
    ]


@hookimpl
async def check_health(plugin: PluginContext) -> list[HealthResult]:
    settings: Settings = plugin.settings
    return [
        await probe("Sonarr", str(settings.sonarr_url) if settings.sonarr_url else None),
        await probe("Radarr", str(settings.radarr_url) if settings.radarr_url else None),
    ]


async def load_status(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {
        "services": [
            {"name": "Sonarr", "url": str(settings.sonarr_url) if settings.sonarr_url else None},
            {"name": "Radarr", "url": str(settings.radarr_url) if settings.radarr_url else None},
        ]
    }
