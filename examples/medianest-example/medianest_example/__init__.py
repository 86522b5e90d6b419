"""An example plugin: a greeting route, pings kept in a table of its own, and a live widget.

It imports only from ``medianest``, the plugin API, and shows each thing a plugin can add:
a settings model, JSON routes with request and response models, a permission of its own, a
table with its own migrations, a websocket topic and a dashboard widget with its own template
that refreshes when the topic announces news.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import MetaData, func, insert, select

from medianest import (
    ApiModel,
    PermissionSpec,
    PluginContext,
    Route,
    Widget,
    current_user,
    hookimpl,
    writing,
)

from .models import Base
from .models import Ping as PingRow

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


class PingOut(ApiModel):
    message: str
    at: datetime


class PingList(ApiModel):
    total: int
    pings: list[PingOut] = Field(description="The newest first, twenty at most.")


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_tables() -> MetaData:
    return Base.metadata


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
        Route("GET", "/example/pings", pings, response=PingList, summary="The pings received"),
    ]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget(name="hello", title="Example", template="hello.html", load=load_hello, topic=TOPIC)
    ]


async def hello(plugin: PluginContext) -> Hello:
    settings: Settings = plugin.settings
    return Hello(greeting=settings.greeting)


async def ping(request: web.Request, body: PingIn, plugin: PluginContext) -> Ping:
    user = current_user(request)
    assert user is not None  # the route needs a permission: someone is signed in
    at = datetime.now(UTC)
    # Write through medianest.writing: on SQLite, the process's writers take turns.
    async with writing(plugin.db) as conn:
        await conn.execute(insert(PingRow).values(user_id=user.id, message=body.message, at=at))
        count = (await conn.execute(select(func.count()).select_from(PingRow))).scalar_one()
    event = Ping(message=body.message, count=count, at=at)
    data = event.model_dump(mode="json")
    await plugin.cache.set(LAST_PING_KEY, data, LAST_PING_TTL)
    await plugin.publish(TOPIC, "ping", data)
    return event


async def pings(plugin: PluginContext) -> PingList:
    async with plugin.db.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(PingRow))).scalar_one()
        rows = await conn.execute(
            select(PingRow.message, PingRow.at).order_by(PingRow.at.desc()).limit(20)
        )
        found = [PingOut(message=m, at=_aware(at)) for m, at in rows]
    return PingList(total=total, pings=found)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def load_hello(plugin: PluginContext) -> dict[str, Any]:
    settings: Settings = plugin.settings
    return {"greeting": settings.greeting, "last_ping": await plugin.cache.get(LAST_PING_KEY)}
