"""Saving a plugin's settings first tries them for real; plugins' service clients live and die
with the plugin."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from medianest import HealthResult, PluginContext, hookimpl
from medianest.core.http import ServiceError, Unauthorised
from medianest.core.keys import REGISTRY
from medianest.testing import FakeSonarr


class ConnSettings(BaseModel):
    url: str | None = None
    api_key: SecretStr | None = None


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return ConnSettings


@hookimpl
async def check_connection(settings: ConnSettings, plugin: PluginContext) -> HealthResult:
    if settings.url is None:
        return HealthResult("Sonarr", "unconfigured", "No address is set.")
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    client = plugin.service_client(
        "sonarr",
        "default",
        settings.url,
        headers={"X-Api-Key": key},
        label="Sonarr",
        retries=0,
        read_timeout=2.0,
    )
    try:
        status = await client.request("GET", "/api/v3/system/status")
    except ServiceError as exc:
        state = "degraded" if isinstance(exc, Unauthorised) else "down"
        return HealthResult("Sonarr", state, str(exc))
    return HealthResult("Sonarr", "ok", "Connected.", version=status["version"])


PLUGIN = SimpleNamespace(
    register_settings_model=register_settings_model, check_connection=check_connection
)


async def _settings(client: Any) -> dict[str, Any]:
    return (await (await client.get("/api/v1/plugins/conn")).json())["settings"]


async def test_settings_are_saved_only_after_a_real_connection(sqlite_settings, make_client):
    async with FakeSonarr() as sonarr:
        client = await make_client(sqlite_settings, extra_plugins=[("conn", PLUGIN)])

        wrong_key = {"url": sonarr.url, "api_key": "not-the-key"}
        resp = await client.put("/api/v1/plugins/conn/settings", json=wrong_key)
        body = await resp.json()
        assert resp.status == 422
        assert "could not connect" in body["error"]["message"]
        assert "refused MediaNest's credentials" in body["error"]["details"][0]["message"]
        assert await _settings(client) == {}

        good = {"url": sonarr.url, "api_key": sonarr.api_key}
        resp = await client.put("/api/v1/plugins/conn/settings", json=good)
        assert resp.status == 200, await resp.text()
        saved = await _settings(client)
        assert saved["url"] == sonarr.url and saved["api_key"] == "••••"
        assert sonarr.calls["GET /api/v3/system/status"] == 2

    # The fake is gone: its port is closed now.
    resp = await client.put("/api/v1/plugins/conn/settings", json=good)
    body = await resp.json()
    assert resp.status == 422
    assert "Sonarr is unreachable" in body["error"]["details"][0]["message"]
    assert (await _settings(client))["url"] == good["url"]


async def test_clients_are_closed_when_the_plugin_is_disabled(sqlite_settings, make_client):
    client = await make_client(sqlite_settings, extra_plugins=[("conn", PLUGIN)])
    assert (await client.post("/api/v1/plugins/conn/enable")).status == 200
    ctx = client.app[REGISTRY].context("conn")
    async with FakeSonarr() as sonarr:
        key = {"X-Api-Key": sonarr.api_key}
        service = ctx.service_client("sonarr", "default", sonarr.url, headers=key)
        assert ctx.service_client("sonarr", "default", sonarr.url, headers=key) is service
        await service.get("/api/v3/system/status")  # a pooled connection to close
        pool = service._http
        assert pool is not None and not pool.closed
        assert (await client.post("/api/v1/plugins/conn/disable")).status == 200
        assert service.closed and pool.closed
        with pytest.raises(RuntimeError, match="is closed"):
            await service.get("/api/v3/system/status")
