"""Live: a test integration whose one live widget is one declaration.

It counts the things a small service holds. Its coordinator reads the count through the
service client; the widget names the coordinator and nothing else: its topic, its poller and
its loader follow, and its template is found in the ``templates`` folder beside this module.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from medianest import Coordinator, Fetched, PluginContext, Widget, hookimpl
from medianest.testing import FakeServer


class Settings(BaseModel):
    """Where the counting service answers."""

    url: str = Field(default="", title="Service URL")
    interval: float = Field(default=60.0, ge=10, le=3600, title="Seconds between counts")


class Counter(FakeServer):
    """The service: ``GET /count`` answers how many things it holds."""

    count: int = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/count", self.answer)

    async def answer(self, request: web.Request) -> web.Response:
        return web.json_response({"count": self.count})


async def count(plugin: PluginContext, interval: float) -> Fetched[dict[str, int]] | None:
    if not plugin.settings.url:
        return None
    http = plugin.service_client("counter", "default", plugin.settings.url, label="Counter")
    return await http.fetch("/count", ttl=interval)


COUNT = Coordinator("count", count, interval=lambda settings: settings.interval)


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_widgets() -> list[Widget]:
    return [Widget("count", "Things", "count.html", coordinator=COUNT)]
