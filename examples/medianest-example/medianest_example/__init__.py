"""An example plugin: a greeting route, a ping event and a live dashboard widget.

It imports only from ``medianest``, the plugin API, and shows each thing a plugin can add:
a settings model, JSON routes with request and response models, a permission of its own, a
websocket topic and a dashboard widget with its own template that refreshes when the topic
announces news.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medianest import ApiModel, PermissionSpec, PluginContext, Route, Widget, hookimpl

TEMPLATES = Path(__file__).parent / "templates"
TOPIC = "example.pings"
# Who may send pings: a permission of the plugin's own, offered on the users admin page.
PING = "example_ping"
# The cache is shared by every MediaNest process (through Redis when configured), so the
# widget shows the same last ping whichever process renders it.
LAST_PING_KEY = "example:last-ping"
LAST_PING_TTL = 24 * 3600.0


class Settings(BaseModel):
    """What an admin can set for the example plugin on the Integrations page."""

    greeting: str = Field(
        default="Hello from the example plugin!",
        min_length=1,
        max_length=200,
        title="Greeting",
        description="Shown on the dashboard and answered by GET /example/hello.",
    )


class Hello(ApiModel):
    greeting: str


class PingIn(ApiModel):
    message: str = Field(min_length=1, max_length=500)


class Ping(ApiModel):
    message: str
    count: int
    at: datetime


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_permissions() -> list[PermissionSpec]:
    return [
        PermissionSpec(
            PING, "Send example pings", "Ping every open dashboard (example plugin).", default=True
        )
    ]


@hookimpl
def register_ws_topics() -> list[str]:
    return [TOPIC]


@hookimpl
def register_routes() -> list[Route]:
    return [
        Route("GET", "/example/hello", hello, response=Hello, summary="The configured greeting"),
        Route(
            "POST",
            "/example/ping",
            ping,
            body=PingIn,
            response=Ping,
            summary="Publish a ping to every open dashboard",
            access=PING,
        ),
    ]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(name="hello", title="Example", template="hello.html", load=load_hello, topic=TOPIC)
    ]


async def hello(plugin: PluginContext) -> Hello:
    settings: Settings = plugin.settings
    return Hello(greeting=settings.greeting)


async def ping(body: PingIn, plugin: PluginContext) -> Ping:
    last = await plugin.cache.get(LAST_PING_KEY) or {}
    event = Ping(message=body.message, count=int(last.get("count", 0)) + 1, at=datetime.now(UTC))
    data = event.model_dump(mode="json")
    await plugin.cache.set(LAST_PING_KEY, data, LAST_PING_TTL)
    await plugin.publish(TOPIC, "ping", data)
    return event


async def load_hello(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {"greeting": settings.greeting, "last_ping": await plugin.cache.get(LAST_PING_KEY)}
