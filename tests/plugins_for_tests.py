"""Small plugins used by the tests, registered through ``create_app(extra_plugins=...)``.

Each plugin is an object with ``@hookimpl`` methods, so every test gets fresh counters and
its own routes (the paths carry the plugin's name).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr

from medianest import (
    ApiModel,
    HealthResult,
    NavItem,
    PluginContext,
    Poller,
    Route,
    Widget,
    hookimpl,
)

TEMPLATES = Path(__file__).parent / "plugin_templates"


class ProbeSettings(BaseModel):
    """Settings of the probe plugin: a URL, a number and a secret."""

    url: str = Field(default="", title="Service URL")
    retries: int = Field(default=3, ge=0, le=10, title="Retries")
    api_key: SecretStr | None = Field(default=None, title="API key")


class EchoIn(ApiModel):
    """What the echo route accepts."""

    text: str = Field(min_length=1, max_length=20)
    times: int = Field(default=1, ge=1, le=5)
    tags: list[str] = Field(default_factory=list)


class EchoOut(ApiModel):
    """What the echo route answers."""

    text: str
    count: int


class Kind(StrEnum):
    movie = "movie"
    tv = "tv"


class SearchQuery(BaseModel):
    """Query parameters of the search route."""

    q: str = Field(min_length=1, description="What to look for")
    kind: Kind = Kind.movie
    limit: int = Field(default=10, ge=1, le=50)


class ProbePlugin:
    """Probe: a test integration with routes, a widget, a poller and a websocket topic."""

    def __init__(self, name: str = "probe", *, poll_interval: float = 0.02) -> None:
        self.name = name
        self.topic = f"{name}-events"
        self.poll_interval = poll_interval
        self.lifecycle: list[str] = []
        self.activated_with: list[ProbeSettings] = []
        self.poller_runs = 0

    # --- registration -------------------------------------------------------------------

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [
            Route("GET", f"/api/v1/{self.name}/hello", self.hello, name=f"{self.name}-hello"),
            Route("GET", f"/{self.name}/page", self.page, include_in_schema=False),
            Route(
                "POST",
                f"/api/v1/{self.name}/echo",
                self.echo,
                body=EchoIn,
                response=EchoOut,
                summary="Repeat a text",
            ),
            Route(
                "GET",
                f"/api/v1/{self.name}/search",
                self.search,
                query=SearchQuery,
                summary="Search the probe",
            ),
            Route("POST", f"/api/v1/{self.name}/publish", self.publish),
            Route("GET", f"/api/v1/{self.name}/boom", self.boom),
        ]

    @hookimpl
    def register_widgets(self) -> list[Widget]:
        return [
            Widget(
                name="counter",
                title=f"{self.name.title()} counter",
                template="probe_widget.html",
                load=self.load_widget,
                topic=self.topic,
            )
        ]

    @hookimpl
    def register_pollers(self) -> list[Poller]:
        return [Poller(name="tick", interval=self.poll_interval, run=self.tick)]

    @hookimpl
    def register_ws_topics(self) -> list[str]:
        return [self.topic]

    @hookimpl
    def register_settings_model(self) -> type[BaseModel]:
        return ProbeSettings

    @hookimpl
    def register_template_dirs(self) -> list[Path]:
        return [TEMPLATES]

    # --- lifecycle ----------------------------------------------------------------------

    @hookimpl
    def activate(self, plugin: PluginContext) -> None:
        self.lifecycle.append("activate")
        self.activated_with.append(plugin.settings)

    @hookimpl
    async def deactivate(self) -> None:
        self.lifecycle.append("deactivate")

    @hookimpl
    def check_health(self, plugin: PluginContext) -> HealthResult:
        return HealthResult(f"{self.name} service", "ok", plugin.settings.url)

    # --- what the registrations point at --------------------------------------------------

    async def hello(self, plugin: PluginContext) -> dict[str, Any]:
        """Say hello."""
        return {"hello": plugin.name}

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=f"<p>{self.name} page</p>", content_type="text/html")

    async def echo(self, body: EchoIn) -> EchoOut:
        """Repeat the text ``times`` times."""
        return EchoOut(text=body.text * body.times, count=body.times)

    async def search(self, query: SearchQuery) -> dict[str, Any]:
        return {"q": query.q, "kind": query.kind.value, "limit": query.limit}

    async def publish(self, request: web.Request, plugin: PluginContext) -> dict[str, Any]:
        """Publish the posted JSON on the plugin's topic."""
        data = await request.json()
        await plugin.publish(self.topic, "ping", data)
        return {"published": True}

    async def boom(self) -> dict[str, Any]:
        raise RuntimeError("database password is hunter2")

    async def load_widget(self, plugin: PluginContext) -> dict[str, Any]:
        return {"plugin": plugin.name, "message": "all good"}

    async def tick(self) -> None:
        self.poller_runs += 1


class BrokenWidgetPlugin:
    """Broken widget: its widget's loader always raises."""

    @hookimpl
    def register_widgets(self) -> list[Widget]:
        return [Widget("broken", "Broken tile", "probe_widget.html", load=self.load)]

    @hookimpl
    def register_template_dirs(self) -> list[Path]:
        return [TEMPLATES]

    async def load(self) -> None:
        raise ConnectionError("upstream refused the connection")


class BrokenHealthPlugin:
    """Broken health: check_health always raises."""

    @hookimpl
    def check_health(self) -> HealthResult:
        raise TimeoutError("status endpoint timed out")


class BrokenNavPlugin:
    """Broken navigation: extra_nav_items always raises."""

    @hookimpl
    def extra_nav_items(self) -> list[NavItem]:
        raise KeyError("menu")


class GoodNavPlugin:
    """Good navigation: adds one link."""

    @hookimpl
    def extra_nav_items(self) -> list[NavItem]:
        return [NavItem("Probe link", "/probe-link")]


class BrokenActivatePlugin:
    """Broken activate: cannot start."""

    def __init__(self) -> None:
        self.pollers_ran = 0

    @hookimpl
    def activate(self) -> None:
        raise PermissionError("cannot open the socket")

    @hookimpl
    def register_pollers(self) -> list[Poller]:
        return [Poller("never", 0.01, self.run)]

    async def run(self) -> None:
        self.pollers_ran += 1


class SlowWidgetPlugin:
    """Slow widget: its loader hangs."""

    @hookimpl
    def register_widgets(self) -> list[Widget]:
        return [Widget("slow", "Slow tile", "probe_widget.html", load=self.load)]

    @hookimpl
    def register_template_dirs(self) -> list[Path]:
        return [TEMPLATES]

    async def load(self) -> None:
        await asyncio.sleep(30)


class MisspelledHookPlugin:
    """Misspelled: implements register_widget (singular)."""

    @hookimpl
    def register_widget(self) -> list[Widget]:
        return []


class WrongArgumentPlugin:
    """Wrong argument: activate takes ctx instead of plugin."""

    @hookimpl
    def activate(self, ctx: PluginContext) -> None:
        return None
