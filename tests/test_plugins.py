"""The plugin registry as an operator sees it: discovery, runtime toggles, failures, settings."""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import ADMIN, MakeClient, wait_for
from plugins_for_tests import (
    BrokenActivatePlugin,
    BrokenHealthPlugin,
    BrokenNavPlugin,
    BrokenWidgetPlugin,
    GoodNavPlugin,
    MisspelledHookPlugin,
    ProbePlugin,
    SlowWidgetPlugin,
    WrongArgumentPlugin,
)
from sqlalchemy import select

from medianest.core.keys import ENGINE
from medianest.core.models import AuditLog
from medianest.core.settings import Settings, load_settings

BUILT_INS = {"plex", "arr", "youtube", "tmdb", "tautulli", "webhook"}
CORE_DIR = Path(__file__).resolve().parent.parent / "medianest"


async def enable(client: TestClient, name: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/plugins/{name}/enable")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def disable(client: TestClient, name: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/plugins/{name}/disable")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def plugin_info(client: TestClient, name: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/plugins/{name}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def dashboard_widgets(client: TestClient) -> dict[str, dict[str, Any]]:
    resp = await client.get("/api/v1/dashboard")
    assert resp.status == 200
    return {f"{w['plugin']}:{w['name']}": w for w in (await resp.json())["widgets"]}


async def ws_subscribe(client: TestClient, *topics: str) -> list[dict[str, Any]]:
    """Open a websocket, subscribe to ``topics`` and return the replies (then close)."""
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": list(topics)})
        replies = [await ws.receive_json(timeout=2)]
        if replies[0]["topics"] != list(topics):
            replies.append(await ws.receive_json(timeout=2))
        return replies


async def audit_rows(client: TestClient) -> list[dict[str, Any]]:
    """The audit log's entries about plugins (signing in is audited too, but not tested here)."""
    async with client.app[ENGINE].connect() as conn:
        result = await conn.execute(
            select(AuditLog.__table__)
            .where(AuditLog.action.startswith("plugin."))
            .order_by(AuditLog.id)
        )
        return [dict(row) for row in result.mappings()]


# --- discovery -----------------------------------------------------------------------------


async def test_built_ins_are_found_through_the_entry_point_group(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    group = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="medianest.plugins")}
    assert set(group) >= BUILT_INS
    assert all(group[name] == f"medianest_plugins.{name}" for name in BUILT_INS)

    client = await make_client(sqlite_settings)
    resp = await client.get("/api/v1/plugins")
    listed = {p["name"]: p for p in (await resp.json())["plugins"]}
    assert set(listed) >= BUILT_INS
    for name in BUILT_INS:
        # Found as an installed distribution's entry point (so it has its version), and
        # waiting for an admin: nothing is on until someone turns it on.
        assert listed[name]["version"] == "0.1.0"
        assert listed[name]["status"] == "inactive"
        assert listed[name]["enabled"] is False
        assert listed[name]["description"]


def test_core_never_imports_the_built_in_plugins_by_name() -> None:
    offenders = []
    for path in [*CORE_DIR.glob("*.py"), *(CORE_DIR / "core").glob("*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # importlib.import_module("medianest_plugins.x") counts too.
                names = [node.value] if node.value.startswith("medianest_plugins.") else []
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("medianest_plugins")]
    assert offenders == []


# --- runtime toggles -------------------------------------------------------------------------


async def test_enable_and_disable_apply_at_once_and_survive_a_restart(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])

    # Installed but off: no route, no widget, no poller, no topic.
    assert (await client.get("/api/v1/probe/hello")).status == 404
    assert "probe:counter" not in await dashboard_widgets(client)
    assert probe.poller_runs == 0
    assert probe.lifecycle == []

    body = await enable(client, "probe")
    assert body["enabled"] is True
    assert body["status"] == "active"
    resp = await client.get("/api/v1/probe/hello")
    assert resp.status == 200
    assert await resp.json() == {"hello": "probe"}
    assert (await client.get("/probe/page")).status == 200
    page = await (await client.get("/")).text()
    assert 'id="widget-probe-counter"' in page
    assert "Probe probe says all good" in page
    widgets = await dashboard_widgets(client)
    assert widgets["probe:counter"]["data"] == {"plugin": "probe", "message": "all good"}
    assert widgets["probe:counter"]["error"] is None
    await wait_for(lambda: _true(probe.poller_runs >= 3))
    assert "1 poller(s) running" in await (await client.get("/admin/plugins")).text()
    replies = await ws_subscribe(client, probe.topic)
    assert replies == [{"type": "subscribed", "topics": [probe.topic]}]

    body = await disable(client, "probe")
    assert body["enabled"] is False
    assert body["status"] == "inactive"
    # The route is gone: a JSON error under /api/, a page elsewhere.
    resp = await client.get("/api/v1/probe/hello")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get("/probe/page")
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "Not found" in await resp.text()
    assert "widget-probe-counter" not in await (await client.get("/")).text()
    assert "probe:counter" not in await dashboard_widgets(client)
    assert (await client.get("/widgets/probe/counter")).status == 404
    runs = probe.poller_runs
    await asyncio.sleep(probe.poll_interval * 8)
    assert probe.poller_runs == runs, "the poller kept running after the plugin was disabled"
    assert "0 poller(s) running" in await (await client.get("/admin/plugins")).text()
    replies = await ws_subscribe(client, probe.topic)
    assert replies[0] == {"type": "subscribed", "topics": []}
    assert replies[1]["type"] == "error"
    assert replies[1]["topics"] == [probe.topic]

    # And back again, still without a restart.
    await enable(client, "probe")
    assert (await client.get("/api/v1/probe/hello")).status == 200
    assert "probe:counter" in await dashboard_widgets(client)
    runs = probe.poller_runs
    await wait_for(lambda: _true(probe.poller_runs >= runs + 3))
    replies = await ws_subscribe(client, probe.topic)
    assert replies == [{"type": "subscribed", "topics": [probe.topic]}]
    assert probe.lifecycle == ["activate", "deactivate", "activate"]

    # A restart on the same database finds it enabled and activates it at start-up.
    await client.close()
    assert probe.lifecycle[-1] == "deactivate", "not deactivated at shutdown"
    again = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", again)])
    assert again.lifecycle == ["activate"]
    assert (await plugin_info(client, "probe"))["status"] == "active"
    assert (await client.get("/api/v1/probe/hello")).status == 200
    await disable(client, "probe")
    await client.close()

    third = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", third)])
    assert third.lifecycle == []
    assert (await client.get("/api/v1/probe/hello")).status == 404


async def _true(value: bool) -> bool:
    return value


async def test_the_admin_page_toggle_form_switches_a_plugin(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    page = await (await client.get("/admin/plugins")).text()
    assert 'data-toggle="probe" aria-pressed="false"' in page

    resp = await client.post(
        "/admin/plugins/probe/toggle", data={"enabled": "1"}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/admin/plugins#plugin-probe"
    assert (await client.get("/api/v1/probe/hello")).status == 200
    page = await (await client.get("/admin/plugins")).text()
    assert 'data-toggle="probe" aria-pressed="true"' in page

    await client.post("/admin/plugins/probe/toggle", data={"enabled": "0"})
    assert (await client.get("/api/v1/probe/hello")).status == 404


async def test_activate_and_deactivate_fire_on_toggles_and_settings_changes(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])

    # Settings saved while disabled do not activate anything.
    resp = await client.put("/api/v1/plugins/probe/settings", json={"url": "http://a.example"})
    assert resp.status == 200
    assert probe.lifecycle == []

    await enable(client, "probe")
    assert probe.lifecycle == ["activate"]
    assert probe.activated_with[-1].url == "http://a.example"

    resp = await client.put("/api/v1/plugins/probe/settings", json={"url": "http://b.example"})
    assert resp.status == 200
    assert probe.lifecycle == ["activate", "deactivate", "activate"]
    assert probe.activated_with[-1].url == "http://b.example"
    # The plugin's routes and hooks see the new settings straight away.
    health = await (await client.get("/api/v1/plugins/probe/health")).json()
    assert health["checks"][0]["message"] == "http://b.example"

    await disable(client, "probe")
    assert probe.lifecycle == ["activate", "deactivate", "activate", "deactivate"]


# --- failing plugins -------------------------------------------------------------------------


async def test_a_failing_plugin_never_breaks_the_pages_and_is_reported_once(
    sqlite_settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken_activate = BrokenActivatePlugin()
    plugins = [
        ("probe", ProbePlugin()),
        ("brokenwidget", BrokenWidgetPlugin()),
        ("brokenhealth", BrokenHealthPlugin()),
        ("brokennav", BrokenNavPlugin()),
        ("goodnav", GoodNavPlugin()),
        ("brokenactivate", broken_activate),
    ]
    client = await make_client(sqlite_settings, plugins)
    caplog.set_level(logging.INFO)
    for name, _ in plugins:
        await enable(client, name)

    for _ in range(3):
        resp = await client.get("/")
        assert resp.status == 200
        page = await resp.text()
        assert "Probe probe says all good" in page  # the healthy widget
        assert "Broken tile is unavailable" in page  # the broken one, as a tile
        assert 'href="/probe-link"' in page  # the healthy plugin's nav link
        widgets = await dashboard_widgets(client)
        assert widgets["probe:counter"]["error"] is None
        assert "upstream refused" in widgets["brokenwidget:broken"]["error"]
        resp = await client.get("/api/v1/plugins/brokenhealth/health")
        assert resp.status == 200
        checks = (await resp.json())["checks"]
        assert [c["status"] for c in checks] == ["down"]
        assert "status endpoint timed out" in checks[0]["message"]

    info = await plugin_info(client, "brokenactivate")
    assert info["enabled"] is True
    assert info["status"] == "failed"
    assert info["error"] == "PermissionError: cannot open the socket"
    assert (await plugin_info(client, "brokennav"))["hook_errors"] == {
        "extra_nav_items": "KeyError: 'menu'"
    }
    assert (
        "TimeoutError: status endpoint timed out"
        in ((await plugin_info(client, "brokenhealth"))["hook_errors"]["check_health"])
    )
    widget_errors = (await plugin_info(client, "brokenwidget"))["hook_errors"]
    assert any("upstream refused the connection" in m for m in widget_errors.values())
    assert (await plugin_info(client, "probe"))["hook_errors"] == {}
    assert broken_activate.pollers_ran == 0  # a failed plugin runs nothing

    resp = await client.get("/admin/plugins")
    assert resp.status == 200
    admin = await resp.text()
    assert "PermissionError: cannot open the socket" in admin
    assert "status-failed" in admin
    assert "Failing in <code>extra_nav_items</code>" in admin
    assert "status endpoint timed out" in admin
    assert "upstream refused the connection" in admin

    def logged(text: str) -> int:
        return sum(
            text in (r.getMessage() + str(r.exc_info and r.exc_info[1])) for r in caplog.records
        )

    assert logged("upstream refused the connection") == 1
    assert logged("status endpoint timed out") == 1
    assert logged("'menu'") == 1
    assert logged("cannot open the socket") == 1


async def test_misspelled_hooks_and_wrong_arguments_are_import_errors_not_fatal(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        sqlite_settings,
        [
            ("misspelled", MisspelledHookPlugin()),
            ("wrongarg", WrongArgumentPlugin()),
            ("probe", ProbePlugin()),
        ],
    )
    misspelled = await plugin_info(client, "misspelled")
    assert misspelled["status"] == "import error"
    assert "register_widget" in misspelled["error"]
    wrongarg = await plugin_info(client, "wrongarg")
    assert wrongarg["status"] == "import error"
    assert "'ctx'" in wrongarg["error"]
    assert "activate" in wrongarg["error"]

    resp = await client.post("/api/v1/plugins/misspelled/enable")
    assert resp.status == 409
    assert "register_widget" in (await resp.json())["error"]["message"]
    admin = await (await client.get("/admin/plugins")).text()
    assert "status-import-error" in admin
    assert "register_widget" in admin

    # Everything else works.
    await enable(client, "probe")
    assert (await client.get("/api/v1/probe/hello")).status == 200
    assert (await client.get("/")).status == 200


async def test_an_entry_point_that_fails_to_import_is_reported(
    sqlite_settings: Settings,
    make_client: MakeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = tmp_path / "site"
    dist = site / "brokenthing-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenthing\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        "[medianest.plugins]\nbrokenthing = medianest_test_brokenthing\n"
    )
    (site / "medianest_test_brokenthing.py").write_text(
        'raise ImportError("needs libfoo 2, found libfoo 1")\n'
    )
    monkeypatch.syspath_prepend(str(site))

    client = await make_client(sqlite_settings)
    info = await plugin_info(client, "brokenthing")
    assert info["status"] == "import error"
    assert info["version"] == "0.3"
    assert info["error"] == "ImportError: needs libfoo 2, found libfoo 1"
    assert "needs libfoo 2" in await (await client.get("/admin/plugins")).text()
    assert (await client.post("/api/v1/plugins/brokenthing/enable")).status == 409
    # The built-ins are still there and usable.
    await enable(client, "youtube")
    assert "youtube:status" in await dashboard_widgets(client)


# --- settings ---------------------------------------------------------------------------------


async def test_settings_are_validated_persisted_and_secrets_masked(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])
    await enable(client, "probe")

    info = await plugin_info(client, "probe")
    assert set(info["settings_schema"]["properties"]) == {"url", "retries", "api_key"}

    resp = await client.put(
        "/api/v1/plugins/probe/settings", json={"url": "http://svc", "retries": 99}
    )
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "invalid"
    assert [d["field"] for d in error["details"]] == ["retries"]
    assert "less than or equal to 10" in error["details"][0]["message"]
    assert (await plugin_info(client, "probe"))["settings"] == {}  # nothing saved

    resp = await client.put(
        "/api/v1/plugins/probe/settings",
        json={"url": "http://svc", "retries": 2, "api_key": "s3cret-value"},
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["settings"] == {"url": "http://svc", "retries": 2, "api_key": "••••"}
    assert "s3cret-value" not in await resp.text()
    assert "s3cret-value" not in await (await client.get("/api/v1/plugins")).text()
    assert "s3cret-value" not in await (await client.get("/admin/plugins")).text()
    assert probe.activated_with[-1].api_key is not None
    assert probe.activated_with[-1].api_key.get_secret_value() == "s3cret-value"

    # Sending the mask back (as a form does) keeps the stored secret.
    resp = await client.put(
        "/api/v1/plugins/probe/settings",
        json={"url": "http://other", "retries": 2, "api_key": "••••"},
    )
    assert resp.status == 200
    assert probe.activated_with[-1].url == "http://other"
    assert probe.activated_with[-1].api_key is not None
    assert probe.activated_with[-1].api_key.get_secret_value() == "s3cret-value"

    # Persisted: a restart on the same database hands the plugin the same settings.
    await client.close()
    again = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", again)])
    assert (await plugin_info(client, "probe"))["settings"] == {
        "url": "http://other",
        "retries": 2,
        "api_key": "••••",
    }
    assert again.activated_with[0].api_key is not None
    assert again.activated_with[0].api_key.get_secret_value() == "s3cret-value"

    # Every change is audited, and no secret reaches the audit log.
    rows = await audit_rows(client)
    assert [(r["action"], r["target"]) for r in rows] == [
        ("plugin.enable", "probe"),
        ("plugin.settings", "probe"),
        ("plugin.settings", "probe"),
    ]
    # Attributed to the signed-in administrator who made the change, from their address.
    assert all(r["actor"] == ADMIN[0] and r["address"] == "127.0.0.1" for r in rows)
    assert rows[1]["details"] == {"fields": ["api_key", "retries", "url"]}
    assert "s3cret" not in repr(rows)


async def test_the_admin_settings_form_saves_and_shows_errors(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])
    await enable(client, "probe")
    page = await (await client.get("/admin/plugins")).text()
    assert 'name="api_key"' in page
    assert 'type="password" name="api_key"' in page

    resp = await client.post(
        "/admin/plugins/probe/settings",
        data={"url": "http://form", "retries": "4", "api_key": "form-secret"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/admin/plugins#plugin-probe"
    assert probe.activated_with[-1].retries == 4
    page = await (await client.get("/admin/plugins")).text()
    assert 'value="http://form"' in page
    assert "form-secret" not in page
    assert 'value="••••"' in page

    # The form posted back as shown (the mask in the password field) keeps the secret.
    resp = await client.post(
        "/admin/plugins/probe/settings",
        data={"url": "http://form2", "retries": "4", "api_key": "••••"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert probe.activated_with[-1].api_key is not None
    assert probe.activated_with[-1].api_key.get_secret_value() == "form-secret"

    resp = await client.post(
        "/admin/plugins/probe/settings", data={"url": "http://form3", "retries": "many"}
    )
    assert resp.status == 422
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert 'class="form-errors"' in page
    assert "<strong>retries</strong>" in page
    assert "valid integer" in page
    assert probe.activated_with[-1].url == "http://form2"  # nothing saved

    rows = await audit_rows(client)
    assert [r["action"] for r in rows] == ["plugin.enable", "plugin.settings", "plugin.settings"]
    assert "form-secret" not in repr(rows)


async def test_toggles_from_the_form_are_audited(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    await client.post("/admin/plugins/probe/toggle", data={"enabled": "1"})
    await client.post("/admin/plugins/probe/toggle", data={"enabled": "0"})
    await disable(client, "plex")
    rows = await audit_rows(client)
    assert [(r["action"], r["target"]) for r in rows] == [
        ("plugin.enable", "probe"),
        ("plugin.disable", "probe"),
        ("plugin.disable", "plex"),
    ]


# --- widgets ---------------------------------------------------------------------------------


async def test_a_hanging_widget_is_shown_unavailable_within_the_timeout(
    tmp_path: Path, make_client: MakeClient
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", widget_timeout=0.5)
    client = await make_client(settings, [("probe", ProbePlugin()), ("slow", SlowWidgetPlugin())])
    await enable(client, "probe")
    await enable(client, "slow")

    started = time.monotonic()
    resp = await client.get("/")
    elapsed = time.monotonic() - started
    assert resp.status == 200
    page = await resp.text()
    assert 0.4 < elapsed < 2.0
    assert "Slow tile did not answer within 0.5 s." in page
    assert "widget-unavailable" in page
    assert "Probe probe says all good" in page

    started = time.monotonic()
    widgets = await dashboard_widgets(client)
    assert time.monotonic() - started < 2.0
    assert widgets["slow:slow"]["error"] == "Slow tile did not answer within 0.5 s."
    assert widgets["probe:counter"]["error"] is None


# --- several processes -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_toggle_on_one_process_applies_on_another_within_a_second(
    tmp_path: Path, pg_url: str, redis_url: str, make_client: MakeClient
) -> None:
    def settings(name: str) -> Settings:
        return load_settings(data_dir=tmp_path / name, database_url=pg_url, redis_url=redis_url)

    probe_a, probe_b = ProbePlugin(), ProbePlugin()
    a = await make_client(settings("a"), [("probe", probe_a)])
    b = await make_client(settings("b"), [("probe", probe_b)])
    assert (await b.get("/api/v1/probe/hello")).status == 404

    async def b_answers(status: int) -> bool:
        return (await b.get("/api/v1/probe/hello")).status == status

    body = await enable(a, "probe")
    assert body["enabled"] is True
    assert body["status"] == "active"
    await wait_for(lambda: b_answers(200), seconds=1.0)
    assert probe_b.lifecycle == ["activate"]
    assert (await plugin_info(b, "probe"))["status"] == "active"

    await disable(b, "probe")
    await wait_for(lambda: _status_is(a, "/api/v1/probe/hello", 404), seconds=1.0)

    # The route closes as the plugin starts deactivating; its deactivate hook follows.
    async def deactivated() -> bool:
        return probe_a.lifecycle == ["activate", "deactivate"]

    await wait_for(deactivated, seconds=1.0)

    resp = await a.put("/api/v1/plugins/probe/settings", json={"url": "http://shared"})
    assert resp.status == 200
    await enable(a, "probe")
    await wait_for(lambda: b_answers(200), seconds=1.0)
    assert probe_b.activated_with[-1].url == "http://shared"


async def _status_is(client: TestClient, path: str, status: int) -> bool:
    return (await client.get(path)).status == status


def test_the_youtube_model_left_the_public_api_with_a_deprecation_alias() -> None:
    from medianest_plugins.youtube import models

    import medianest

    assert "YouTubeDownload" not in medianest.__all__
    with pytest.warns(DeprecationWarning, match="the youtube plugin owns its table now"):
        from medianest import YouTubeDownload  # type: ignore[attr-defined]
    assert YouTubeDownload is models.YouTubeDownload
    with pytest.raises(AttributeError):
        medianest.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
