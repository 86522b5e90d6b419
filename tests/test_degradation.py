"""Widgets fed through the service client layer degrade gracefully, and the dashboard around
them keeps its speed: against a real loopback upstream with faults switched on."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from pydantic import BaseModel, SecretStr

from medianest import PluginContext, Widget, hookimpl
from medianest.core.settings import load_settings
from medianest.testing import FakeServer

KEY = "upstream-key"


@dataclass
class Upstream(FakeServer):
    """Two JSON endpoints behind an API key, like a small *arr."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/a", self.answer)
        app.router.add_get("/b", self.answer)

    async def answer(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != KEY:
            return web.json_response({"error": "Unauthorized"}, status=401)
        return web.json_response({"word": f"alpha-{request.path[1:]}"})


class Settings(BaseModel):
    url: str = ""
    api_key: SecretStr = SecretStr("")
    ttl: float = 30.0


def _client(plugin: PluginContext) -> Any:
    s: Settings = plugin.settings
    return plugin.service_client(
        "upstream",
        "main",
        s.url,
        headers={"X-Api-Key": s.api_key.get_secret_value()},
        label="Upstream",
        read_timeout=0.5,
        connect_timeout=0.5,
        failure_threshold=1,
        reset_after=60,
        retries=0,
    )


async def load_a(plugin: PluginContext) -> Any:
    return await _client(plugin).fetch("/a", ttl=plugin.settings.ttl)


async def load_b(plugin: PluginContext) -> Any:
    return await _client(plugin).fetch("/b", ttl=plugin.settings.ttl)


TEMPLATES = Path(__file__).parent / "plugin_templates"


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget("a", "Widget A", "word.html", load_a),
        Widget("b", "Widget B", "word.html", load_b),
    ]


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


PLUGIN = SimpleNamespace(
    register_widgets=register_widgets,
    register_settings_model=register_settings_model,
    register_template_dirs=register_template_dirs,
)


async def _portal(tmp_path: Path, make_client: Any, upstream: Upstream, **settings: Any) -> Any:
    client = await make_client(
        load_settings(data_dir=tmp_path / "data", widget_timeout=5),
        extra_plugins=[("up", PLUGIN)],
    )
    body = {"url": upstream.url, "api_key": KEY} | settings
    assert (await client.put("/api/v1/plugins/up/settings", json=body)).status == 200
    assert (await client.post("/api/v1/plugins/up/enable")).status == 200
    return client


async def test_fifty_cold_viewers_cause_one_upstream_call_per_widget(tmp_path, make_client):
    async with Upstream() as upstream:
        client = await _portal(tmp_path, make_client, upstream)
        responses = await asyncio.gather(*(client.get("/") for _ in range(50)))
        assert {r.status for r in responses} == {200}
        pages = [await r.text() for r in responses]
        assert all("alpha-a" in p and "alpha-b" in p for p in pages)
        assert upstream.calls["GET /a"] == 1
        assert upstream.calls["GET /b"] == 1


async def test_a_hung_upstream_costs_one_timeout_then_nothing(tmp_path, make_client):
    async with Upstream() as upstream:
        client = await _portal(tmp_path, make_client, upstream)
        upstream.faults.hang = True

        started = time.monotonic()
        first = await client.get("/")
        first_took = time.monotonic() - started
        page = await first.text()
        assert first.status == 200
        assert "Upstream did not answer in time" in page
        assert 0.4 <= first_took < 2.0, first_took

        calls = sum(upstream.calls.values())
        started = time.monotonic()
        second = await client.get("/")
        second_took = time.monotonic() - started
        page = await second.text()
        assert second.status == 200
        assert "Upstream has been failing since" in page
        assert re.search(r"since \d\d:\d\d: Upstream did not answer in time", page)
        assert second_took < 0.3, second_took
        assert sum(upstream.calls.values()) == calls  # the breaker kept us away

        admin = await (await client.get("/admin/plugins")).text()
        assert 'data-service="Upstream"' in admin and "breaker open" in admin


async def test_an_upstream_gone_down_shows_the_last_good_data_with_its_age(tmp_path, make_client):
    upstream = Upstream()
    await upstream.start()
    client = await _portal(tmp_path, make_client, upstream, ttl=0.2)
    assert "alpha-a" in await (await client.get("/")).text()
    await upstream.stop()
    await asyncio.sleep(0.3)  # the fresh copy expires; the last good one stays

    resp = await client.get("/")
    page = await resp.text()
    assert resp.status == 200
    assert "alpha-a" in page
    assert "Upstream is unreachable" in page and "showing data from" in page
    data = await (await client.get("/api/v1/dashboard")).json()
    widget = next(w for w in data["widgets"] if w["name"] == "a")
    assert widget["data"] == {"word": "alpha-a"} and "showing data from" in widget["notice"]


async def test_a_wrong_key_reads_as_refused_not_unreachable(tmp_path, make_client):
    async with Upstream() as upstream:
        client = await _portal(tmp_path, make_client, upstream, api_key="wrong")
        resp = await client.get("/")
        page = await resp.text()
        assert resp.status == 200
        assert "Upstream refused MediaNest&#39;s credentials" in page
        assert "unreachable" not in page
