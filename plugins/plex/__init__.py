"""Plex Media Server: server status, now playing, recently added, library scans.

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
    """Connection settings of the Plex integration."""

    url: HttpUrl | None = Field(
        default=None, title="Server URL", description="e.g. http://192.168.1.10:32400"
    )
    token: SecretStr | None = Field(default=None, title="Plex token")


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [Widget(name="status", title="Plex", template="status.html", load=load_status)]


@hookimpl
async def check_health(plugin: PluginContext) -> HealthResult:
    settings: Settings = plugin.settings
    return await probe("Plex Media Server", str(settings.url) if settings.url else None)


async def load_status(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {
        "services": [
            {"name": "Plex Media Server", "url": str(settings.url) if settings.url else None}
        ]
    }
