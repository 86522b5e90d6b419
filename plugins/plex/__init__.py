"""Plex Media Server: sign-in with Plex, server status, now playing, recently added, scans.

Sign-in with Plex (the plex.tv PIN flow) lets in the owner of the configured server and the
people it is shared with. The rest is a skeleton for now: settings, a health check and a
status widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, HttpUrl, SecretStr

from medianest import (
    HealthResult,
    PluginContext,
    Route,
    SignInProvider,
    Widget,
    hookimpl,
    probe,
)

from . import plextv, signin

TEMPLATES = Path(__file__).parent / "templates"


class Settings(BaseModel):
    """Connection settings of the Plex integration."""

    url: HttpUrl | None = Field(
        default=None, title="Server URL", description="e.g. http://192.168.1.10:32400"
    )
    token: SecretStr | None = Field(
        default=None,
        title="Plex token",
        description="The server owner's token; lets MediaNest read the server's name and status",
    )
    plex_tv_url: HttpUrl = Field(
        default=HttpUrl("https://plex.tv"),
        title="plex.tv address",
        description="Where plex.tv's API answers; change it only for testing",
    )
    plex_app_url: HttpUrl = Field(
        default=HttpUrl("https://app.plex.tv/auth"),
        title="Plex sign-in page",
        description="Where people approve the sign-in; change it only for testing",
    )


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_sign_in_providers() -> list[SignInProvider]:
    return [SignInProvider("plex", "Sign in with Plex", signin.START)]


@hookimpl
def register_routes() -> list[Route]:
    return [
        Route("GET", signin.START, signin.start, access="public", include_in_schema=False),
        Route("GET", signin.CALLBACK, signin.callback, access="public", include_in_schema=False),
    ]


@hookimpl
async def activate(plugin: PluginContext) -> None:
    plugin.state["http"] = plextv.new_session()


@hookimpl
async def deactivate(plugin: PluginContext) -> None:
    session = plugin.state.pop("http", None)
    if session is not None:
        await session.close()


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
