"""The example third-party plugin, installed as its own package, in a real MediaNest app.

CI installs it with ``pip install -e examples/medianest-example``; it must then be found through
its entry point like any plugin a user installs, and be toggled at runtime without a restart.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from conftest import MakeClient, require

from medianest.core.settings import Settings

WIDGET_ID = 'id="widget-example-hello"'


@pytest.fixture(autouse=True)
def _example_installed() -> None:
    found = importlib.metadata.entry_points(group="medianest.plugins", name="example")
    require(
        found, "the example plugin is not installed (pip install -e examples/medianest-example)"
    )


async def test_discovered_through_its_entry_point_and_disabled(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    client = await make_client(sqlite_settings)
    listing = await (await client.get("/api/v1/plugins")).json()
    example = next(p for p in listing["plugins"] if p["name"] == "example")
    assert example["version"] == importlib.metadata.version("medianest-example")
    assert example["description"].startswith("An example plugin")
    assert example["enabled"] is False
    assert example["status"] == "inactive"
    assert example["widgets"] == ["hello"]
    assert set(example["routes"]) == {
        "GET /example/hello",
        "POST /example/ping",
        "GET /example/pings",
    }
    assert example["settings_schema"]["properties"]["greeting"]["type"] == "string"

    assert (await client.get("/example/hello")).status == 404
    assert (await client.get("/widgets/example/hello")).status == 404
    admin = await (await client.get("/admin/plugins")).text()
    assert 'id="plugin-example"' in admin
    assert "v" + example["version"] in admin


async def test_enable_and_disable_without_restart(
    make_client: MakeClient, db_settings: Settings
) -> None:
    client = await make_client(db_settings)

    enabled = await client.post("/api/v1/plugins/example/enable")
    assert enabled.status == 200, await enabled.text()
    assert (await enabled.json())["status"] == "active"

    hello = await client.get("/example/hello")
    assert hello.status == 200
    assert await hello.json() == {"greeting": "Hello from the example plugin!"}
    dashboard = await (await client.get("/")).text()
    assert WIDGET_ID in dashboard
    assert 'data-topic="example.pings"' in dashboard
    assert "Hello from the example plugin!" in dashboard
    widgets = (await (await client.get("/api/v1/dashboard")).json())["widgets"]
    assert [(w["plugin"], w["name"]) for w in widgets] == [("example", "hello")]
    openapi = await (await client.get("/api/openapi.json")).json()
    assert "/example/hello" in openapi["paths"]

    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["example.pings"]})
        assert await ws.receive_json(timeout=5) == {
            "type": "subscribed",
            "topics": ["example.pings"],
        }

    disabled = await client.post("/api/v1/plugins/example/disable")
    assert disabled.status == 200, await disabled.text()
    assert (await disabled.json())["status"] == "inactive"

    assert (await client.get("/example/hello")).status == 404
    assert (await client.post("/example/ping", json={"message": "x"})).status == 404
    assert (await client.get("/widgets/example/hello")).status == 404
    dashboard = await (await client.get("/")).text()
    assert WIDGET_ID not in dashboard
    assert "No integration is enabled yet" in dashboard
    openapi = await (await client.get("/api/openapi.json")).json()
    assert "/example/hello" not in openapi["paths"]

    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["example.pings"]})
        assert (await ws.receive_json(timeout=5))["topics"] == []
        refused = await ws.receive_json(timeout=5)
    assert refused["type"] == "error"
    assert refused["topics"] == ["example.pings"]


async def test_settings_change_applies_at_once(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    client = await make_client(sqlite_settings)
    await client.post("/api/v1/plugins/example/enable")
    saved = await client.put("/api/v1/plugins/example/settings", json={"greeting": "Bonjour"})
    assert saved.status == 200, await saved.text()
    assert await (await client.get("/example/hello")).json() == {"greeting": "Bonjour"}

    refused = await client.put("/api/v1/plugins/example/settings", json={"greeting": ""})
    assert refused.status == 422
    details = (await refused.json())["error"]["details"]
    assert [d["field"] for d in details] == ["greeting"]
    assert await (await client.get("/example/hello")).json() == {"greeting": "Bonjour"}
