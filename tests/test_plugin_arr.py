"""The Sonarr & Radarr integration against the fake Sonarr and Radarr, over real HTTP.

Settings (a list of instances of each) are saved only after a real connection test of every
instance; the five widgets (downloads, coming up, missing, disk space, health) render with data,
with empty servers and with a server down, one panel per instance; pollers make one upstream call
per interval however many people watch, stop when the plugin is turned off and push changes to
open dashboards. Approved requests are added with exactly the fields the published specs describe,
never twice, to the instance made for them (4K, anime); a series already there gets the newly
requested seasons monitored and searched for. The webhook receiver checks its secret and pushes
what happened at once; the admin form's options are read live from the instance.
"""

from __future__ import annotations

import asyncio
import base64
import html
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import (
    ADMIN,
    CHROMIUM_ARGS,
    Client,
    MakeClient,
    add_user,
    reload_widgets,
    require,
    wait_for,
)
from medianest_plugins.arr import pollers
from test_fake_arr import SONARR_4, Contract

from medianest import FulfilmentResult, Progress, RequestInfo
from medianest.core import hookspecs
from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings, load_settings
from medianest.testing import Events, FakeArr, FakeRadarr, FakeSonarr, subscribe

PLUGIN = "arr"
SETTINGS_URL = f"/api/v1/plugins/{PLUGIN}/settings"
WIDGETS = ("queue", "upcoming", "wanted", "disk", "health")
# A poll interval short enough for tests to watch several of them go by.
FAST = 0.25
SECRET = "hook-secret-for-tests"
FRIEND = ("friend", "a friend's long password")


@pytest.fixture
async def sonarr() -> AsyncIterator[FakeSonarr]:
    async with FakeSonarr() as server:
        yield server


@pytest.fixture
async def radarr() -> AsyncIterator[FakeRadarr]:
    async with FakeRadarr() as server:
        yield server


@pytest.fixture
async def radarr_4k() -> AsyncIterator[FakeRadarr]:
    async with FakeRadarr(root_folders=["/movies-4k"], api_key="4" * 32) as server:
        yield server


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll every FAST seconds (below what the settings allow)."""
    for coordinator in (
        pollers.QUEUE,
        pollers.UPCOMING,
        pollers.WANTED,
        pollers.DISK,
        pollers.HEALTH,
    ):
        monkeypatch.setattr(coordinator, "interval", FAST)


def instance(fake: FakeArr, name: str, **extra: Any) -> dict[str, Any]:
    """An instance's settings pointing at ``fake``, with its defaults for requests."""
    return {
        "name": name,
        "url": fake.url,
        "api_key": fake.api_key,
        "quality_profile_id": 4,
        "root_folder": fake.root_folders[0],
        "webhook_secret": SECRET,
        **extra,
    }


async def configure(
    client: Client,
    *,
    sonarr: list[dict[str, Any]] = (),  # type: ignore[assignment]
    radarr: list[dict[str, Any]] = (),  # type: ignore[assignment]
    enable: bool = True,
) -> None:
    body = {"sonarr": list(sonarr), "radarr": list(radarr)}
    await client.configure(PLUGIN, body, enable=enable)


async def portal(
    make_client: MakeClient,
    settings: Settings,
    sonarr: FakeSonarr | None = None,
    radarr: FakeRadarr | None = None,
) -> Client:
    """A MediaNest with the integration on, pointed at the fakes given; signed in as admin."""
    client = await make_client(settings)
    await configure(
        client,
        sonarr=[instance(sonarr, "Sonarr")] if sonarr else [],
        radarr=[instance(radarr, "Radarr")] if radarr else [],
    )
    fakes = [f for f in (sonarr, radarr) if f is not None]
    # The pollers' first round has been made.
    await wait_for(lambda: _polled(*fakes))
    return client


async def _polled(*fakes: FakeArr) -> bool:
    paths = ("/api/v3/queue", "/api/v3/calendar", "/api/v3/diskspace", "/api/v3/health")
    return all(fake.calls[f"GET {p}"] >= 1 for fake in fakes for p in paths)


def text(page: str) -> str:
    """A page's text as people read it: no tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def raw_fragment(client: TestClient, widget: str) -> str:
    resp = await client.get(f"/widgets/{PLUGIN}/{widget}")
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def fragment(client: TestClient, widget: str) -> str:
    return text(await raw_fragment(client, widget))


def panel(page: str, name: str) -> str:
    """The text of one instance's panel in a widget's HTML."""
    found = re.search(
        rf'<section class="arr-panel" data-instance="{re.escape(name)}".*?</section>', page, re.S
    )
    assert found, f"no panel {name} in {page}"
    return text(found[0])


def items(page: str, css_class: str) -> list[str]:
    found = re.search(rf'<ul class="{css_class}">(.*?)</ul>', page, re.S)
    assert found, f"no list {css_class} in {page}"
    return [text(item) for item in re.findall(r"<li[^>]*>(.*?)</li>", found[1], re.S)]


def request(
    media_type: str,
    title: str,
    ids: dict[str, str],
    *,
    seasons: list[int] | None = None,
    is_4k: bool = False,
    is_anime: bool = False,
    request_id: str = "1",
) -> RequestInfo:
    details: dict[str, Any] = {"is_4k": is_4k, "is_anime": is_anime}
    if seasons is not None:
        details["seasons"] = seasons
    return RequestInfo(id=request_id, media_type=media_type, title=title, ids=ids, details=details)


async def fulfil(client: TestClient, info: RequestInfo) -> FulfilmentResult:
    answered = await client.app[REGISTRY].call_first(hookspecs.fulfil_request, request=info)
    assert answered is not None
    name, result = answered
    assert name == PLUGIN
    assert isinstance(result, FulfilmentResult)
    return result


MATRIX = request("movie", "The Matrix", {"tmdb": "603", "imdb": "tt0133093"})
BREAKING_BAD = request("tv", "Breaking Bad", {"tvdb": "81189", "tmdb": "1396"}, seasons=[1, 2])


# --- settings and the connection test --------------------------------------------------------


async def _refusal(client: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    refused = await client.refusal(PLUGIN, body)
    assert refused.status == 422
    return refused.details


async def test_masked_keys_stay_with_their_instances_when_the_api_reorders_them(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr
) -> None:
    client = await make_client(sqlite_settings)
    async with FakeSonarr(root_folders=["/anime"], api_key="a" * 32) as anime:
        main, other = instance(sonarr, "Sonarr"), instance(anime, "Sonarr Anime")
        await configure(client, sonarr=[main, other], enable=False)
        saved = await client.saved_settings(PLUGIN)
        assert [i["api_key"] for i in saved["sonarr"]] == ["••••", "••••"]
        # Sent back as shown, in the other order: each key stays with its instance, so each
        # server is asked with its own key (the connection test would be refused otherwise).
        asked = (
            sonarr.calls["GET /api/v3/system/status"],
            anime.calls["GET /api/v3/system/status"],
        )
        resp = await client.put(SETTINGS_URL, json={"sonarr": saved["sonarr"][::-1]})
        assert resp.status == 200, await resp.text()
        assert sonarr.calls["GET /api/v3/system/status"] > asked[0]
        assert anime.calls["GET /api/v3/system/status"] > asked[1]
        assert [i["name"] for i in (await client.saved_settings(PLUGIN))["sonarr"]] == [
            "Sonarr Anime",
            "Sonarr",
        ]
        assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
        health = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
        assert [(c["name"], c["status"]) for c in health["checks"]] == [
            ("Sonarr Anime", "ok"),
            ("Sonarr", "ok"),
        ]


async def test_settings_are_saved_only_after_a_real_connection_test(
    sqlite_settings: Settings,
    make_client: MakeClient,
    sonarr: FakeSonarr,
    radarr: FakeRadarr,
) -> None:
    client = await make_client(sqlite_settings)
    good_sonarr, good_radarr = instance(sonarr, "Sonarr"), instance(radarr, "Radarr")

    # A wrong key: refused with the reason, nothing saved.
    details = await _refusal(
        client, {"sonarr": [{**good_sonarr, "api_key": "0" * 32}], "radarr": [good_radarr]}
    )
    assert details == [{"field": "Sonarr", "message": "Sonarr refused the API key."}]
    assert sonarr.calls["GET /api/v3/system/status"] == 1  # it really asked
    assert await client.saved_settings(PLUGIN) == {}

    # An address where nothing answers, a Radarr listed as a Sonarr, a profile and a folder the
    # server does not have: each said in words.
    async with FakeSonarr() as gone:
        closed = gone.url
    details = await _refusal(client, {"sonarr": [{**good_sonarr, "url": closed}]})
    assert details == [{"field": "Sonarr", "message": "Sonarr is unreachable"}]
    details = await _refusal(client, {"sonarr": [{**good_sonarr, **instance(radarr, "Sonarr")}]})
    assert details == [{"field": "Sonarr", "message": f"{radarr.url} is Radarr, not Sonarr."}]
    details = await _refusal(
        client, {"radarr": [{**good_radarr, "quality_profile_id": 99, "root_folder": "/films"}]}
    )
    [detail] = details
    assert detail["field"] == "Radarr"
    assert "Radarr has no quality profile 99 (it has: 1 Any, 2 SD, 3 HD-720p" in detail["message"]
    assert "Radarr has no root folder /films (it has: /movies)." in detail["message"]
    # Two instances of one kind need names of their own.
    details = await _refusal(client, {"radarr": [good_radarr, good_radarr]})
    assert "two Radarr instances are named 'Radarr'" in details[0]["message"]
    assert await client.saved_settings(PLUGIN) == {}

    # The right settings are tried, then saved, every key masked from then on.
    before = radarr.calls["GET /api/v3/system/status"]
    await configure(client, sonarr=[good_sonarr], radarr=[good_radarr], enable=False)
    assert radarr.calls["GET /api/v3/system/status"] == before + 1
    saved = await client.saved_settings(PLUGIN)
    assert [i["name"] for i in saved["sonarr"]] == ["Sonarr"]
    for kind in ("sonarr", "radarr"):
        assert saved[kind][0]["api_key"] == "••••"
        assert saved[kind][0]["webhook_secret"] == "••••"
        assert saved[kind][0]["url"].rstrip("/") == (sonarr if kind == "sonarr" else radarr).url

    # Enabled, its health names each instance with its version; the nested keys came back
    # decrypted, so the servers accept them.
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    health = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
    assert [(c["name"], c["status"], c["version"]) for c in health["checks"]] == [
        ("Sonarr", "ok", sonarr.version),
        ("Radarr", "ok", radarr.version),
    ]

    # The form sends the masks back: the stored keys are kept and still work.
    resp = await client.put(SETTINGS_URL, json=saved)
    assert resp.status == 200, await resp.text()
    health = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
    assert [c["status"] for c in health["checks"]] == ["ok", "ok"]
    # A later wrong key is refused and the working settings stay.
    details = await _refusal(client, {**saved, "radarr": [{**saved["radarr"][0], "api_key": "f"}]})
    assert details == [{"field": "Radarr", "message": "Radarr refused the API key."}]
    health = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
    assert [c["status"] for c in health["checks"]] == ["ok", "ok"]


async def test_health_reports_each_instance_and_its_own_errors(
    sqlite_settings: Settings,
    make_client: MakeClient,
    sonarr: FakeSonarr,
    radarr: FakeRadarr,
    radarr_4k: FakeRadarr,
) -> None:
    client = await make_client(sqlite_settings)
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    [check] = (await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json())["checks"]
    assert (check["status"], check["message"]) == ("unconfigured", "No Sonarr or Radarr is set up.")

    await configure(
        client,
        sonarr=[instance(sonarr, "Sonarr")],
        radarr=[instance(radarr, "Radarr"), instance(radarr_4k, "Radarr 4K", is_4k=True)],
    )
    radarr_4k.add_health_warning(
        "DownloadClientCheck", "Unable to communicate with qBittorrent", type="error"
    )
    sonarr.add_health_warning("ImportMechanismCheck", "Enable Completed Download Handling")
    await radarr.stop()

    async def checks() -> dict[str, tuple[str, str]]:
        answer = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
        return {c["name"]: (c["status"], c["message"]) for c in answer["checks"]}

    async def settled() -> bool:
        return (await checks())["Radarr 4K"][0] == "degraded"

    await wait_for(settled)
    found = await checks()
    assert found["Sonarr"] == (
        "ok",
        f"Sonarr {sonarr.version}, 1 warning: Enable Completed Download Handling",
    )
    assert found["Radarr"] == ("down", "Radarr is unreachable")
    assert found["Radarr 4K"] == (
        "degraded",
        f"Radarr {radarr_4k.version} reports: DownloadClientCheck: Unable to communicate with"
        " qBittorrent",
    )


# --- the widgets ------------------------------------------------------------------------------


def stock(sonarr: FakeSonarr, radarr: FakeRadarr) -> dict[str, int]:
    """Libraries with something downloading, something coming up, something missing and a
    health warning."""
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    bad = sonarr.add_to_library(81189, downloaded_seasons=[1])
    # The finale airs again in two days: 54 aired episodes of seasons 2 to 5 are missing.
    sonarr.set_air_date(sonarr.episode_id(bad, 5, 16), soon)
    queued = sonarr.add_queue_item(sonarr.episode_id(bad, 2, 1), downloaded=0.25)
    sonarr.add_health_warning("IndexerRssCheck", "No indexers available with RSS sync enabled")
    dune = radarr.add_to_library(693134)
    radarr.add_to_library(603, downloaded=True)
    radarr.set_release_dates(
        693134, in_cinemas=soon.date() - timedelta(days=300), digital=soon.date()
    )
    downloading = radarr.add_queue_item(dune, downloaded=0.4)
    return {"sonarr_queue": queued, "radarr_queue": downloading}


async def test_widgets_show_each_instances_data(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    stock(sonarr, radarr)
    client = await portal(make_client, sqlite_settings, sonarr, radarr)

    raw = await raw_fragment(client, "queue")
    assert panel(raw, "Sonarr") == (
        "Sonarr Breaking Bad S02E01 · Episode 1 25 % 25 % Downloading · 9 min left"
    )
    assert panel(raw, "Radarr") == (
        "Radarr Dune: Part Two (2024) 40 % 40 % Downloading · 20 min left"
    )
    assert 'value="25.0"' in raw and 'value="40.0"' in raw

    raw = await raw_fragment(client, "upcoming")
    [episode] = items(panel_html(raw, "Sonarr"), "arr-upcoming")
    assert episode.endswith("— Breaking Bad S05E16 · Episode 16")
    [film] = items(panel_html(raw, "Radarr"), "arr-upcoming")
    assert film.endswith("— Dune: Part Two (2024) · Digital release")

    raw = await raw_fragment(client, "wanted")
    assert panel(raw, "Sonarr") == "Sonarr 54 episodes missing"
    assert panel(raw, "Radarr") == "Radarr 1 film missing"  # Dune; The Matrix has its file

    raw = await raw_fragment(client, "disk")
    assert items(panel_html(raw, "Sonarr"), "arr-disks")[2] == (
        "/tv: 1.7 TB free of 3.6 TB 54 % 54 % used"
    )
    assert "/movies: 1.7 TB free of 3.6 TB" in panel(raw, "Radarr")

    raw = await raw_fragment(client, "health")
    assert panel(raw, "Sonarr") == (
        "Sonarr Warning · IndexerRssCheck: No indexers available with RSS sync enabled Wiki"
    )
    assert 'href="https://wiki.servarr.com/sonarr/system#indexerrsscheck"' in raw
    assert panel(raw, "Radarr") == "Radarr No health warnings."

    # The dashboard shows all five, and so does its JSON, instance by instance.
    page = await (await client.get("/")).text()
    for title in ("Downloads", "Coming up", "Missing", "Disk space", "Sonarr &amp; Radarr health"):
        assert title in page
    assert "widget-unavailable" not in page
    data = await (await client.get("/api/v1/dashboard")).json()
    mine = {w["name"]: w for w in data["widgets"] if w["plugin"] == PLUGIN}
    assert set(mine) == set(WIDGETS)
    queue = {p["instance"]: p["value"] for p in mine["queue"]["data"]["panels"]}
    assert queue["Radarr"]["records"][0]["movie"]["tmdb_id"] == 693134
    assert mine["wanted"]["data"]["panels"][0]["value"]["missing"] == 54


def panel_html(page: str, name: str) -> str:
    found = re.search(
        rf'<section class="arr-panel" data-instance="{re.escape(name)}".*?</section>', page, re.S
    )
    assert found, f"no panel {name} in {page}"
    return found[0]


async def test_widgets_of_empty_servers(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    expected = {
        "queue": "Nothing is downloading.",
        "upcoming": "Nothing in the next 7 days.",
        "health": "No health warnings.",
    }
    for widget, words in expected.items():
        raw = await raw_fragment(client, widget)
        for name in ("Sonarr", "Radarr"):
            assert panel(raw, name) == f"{name} {words}"
    raw = await raw_fragment(client, "wanted")
    assert panel(raw, "Sonarr") == "Sonarr 0 episodes missing"
    assert panel(raw, "Radarr") == "Radarr 0 films missing"
    assert "widget-unavailable" not in await (await client.get("/")).text()


async def test_widgets_before_anything_is_set_up(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    for widget in WIDGETS:
        assert "Sonarr and Radarr are not set up yet" in await fragment(client, widget)


async def test_a_server_down_from_the_start_degrades_its_panels_only(
    tmp_path: Any, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    stock(sonarr, radarr)
    first = await make_client(settings)
    await configure(first, sonarr=[instance(sonarr, "Sonarr")], radarr=[instance(radarr, "Radarr")])
    await first.close()

    # MediaNest restarts while Sonarr is down: there is no earlier data to fall back on, and
    # Radarr's panels carry on.
    await sonarr.stop()
    client = await make_client(settings)
    resp = await client.get("/")
    assert resp.status == 200
    unavailable = r"Sonarr is unreachable( since \d\d:\d\d)?; no earlier data to show\."
    for widget in WIDGETS:
        raw = await raw_fragment(client, widget)
        assert re.fullmatch(f"Sonarr {unavailable}", panel(raw, "Sonarr")), panel(raw, "Sonarr")
        assert 'class="widget-error" role="status"' in panel_html(raw, "Sonarr")
        assert "unreachable" not in panel(raw, "Radarr")
    assert "Dune: Part Two" in await fragment(client, "queue")


@pytest.mark.usefixtures("fast_polls")
async def test_panels_keep_their_last_data_and_say_why_when_a_server_fails(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    stock(sonarr, radarr)
    client = await portal(make_client, sqlite_settings, sonarr, radarr)

    async def shows(widget: str, name: str, *words: str) -> bool:
        shown = panel(await raw_fragment(client, widget), name)
        return all(w in shown for w in words)

    async def shows_any(widget: str, name: str, *reasons: str) -> bool:
        shown = panel(await raw_fragment(client, widget), name)
        return any(r in shown for r in reasons)

    # Radarr's key was regenerated: the last data with its age, and why.
    radarr.api_key = "b" * 32
    refused = "Radarr refused MediaNest's credentials (check the API key or token); showing data"
    await wait_for(lambda: shows("queue", "Radarr", refused, "Dune: Part Two"), seconds=15)
    # A broken answer, then Radarr gone: still no 500, the data stays, marked with its age.
    radarr.faults.body = "html"
    # Five pollers failing at once open the breaker within a round (every interval is
    # shortened here), and the panel then says the breaker's reason instead.
    await wait_for(
        lambda: shows_any(
            "disk", "Radarr", "Radarr sent an answer MediaNest could not", "Radarr is unreachable"
        ),
        seconds=15,
    )
    await radarr.stop()
    # Until the breaker's next trial call, it names the failure that opened it.
    await wait_for(
        lambda: shows_any(
            "queue", "Radarr", "Radarr is unreachable", "Radarr has been failing since"
        ),
        seconds=15,
    )
    assert await shows("queue", "Radarr", "showing data from")
    assert "Dune: Part Two" in await fragment(client, "queue")
    assert "widget-notice" in panel_html(await raw_fragment(client, "queue"), "Radarr")
    # Sonarr, meanwhile, is fresh.
    assert "widget-notice" not in panel_html(await raw_fragment(client, "queue"), "Sonarr")
    assert (await client.get("/")).status == 200


# --- pollers and live updates -----------------------------------------------------------------

POLLED = {
    "queue": "GET /api/v3/queue",
    "upcoming": "GET /api/v3/calendar",
    "wanted": "GET /api/v3/wanted/missing",
    "disk": "GET /api/v3/diskspace",
    "health": "GET /api/v3/health",
}


@pytest.mark.usefixtures("fast_polls")
async def test_one_upstream_call_per_interval_however_many_viewers(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    before = {fake.app_name: dict(fake.calls) for fake in (sonarr, radarr)}
    started = time.monotonic()
    served = await reload_widgets([client], PLUGIN, WIDGETS, 1.5, each=4)
    elapsed = time.monotonic() - started
    assert served >= 100
    most = int(elapsed / FAST) + 2
    # Radarr 3 has no wanted/missing: its missing films are read from its library.
    for fake, widgets in ((sonarr, POLLED), (radarr, {**POLLED, "wanted": "GET /api/v3/movie"})):
        for call in widgets.values():
            calls = fake.calls[call] - before[fake.app_name].get(call, 0)
            # Pollers keep the data fresh (about one call per interval), viewers add nothing.
            assert 2 <= calls <= most, (fake.app_name, call, calls, most)


@pytest.mark.redis
@pytest.mark.usefixtures("fast_polls")
async def test_one_upstream_call_per_interval_across_processes(
    tmp_path: Any, redis_url: str, make_client: MakeClient, sonarr: FakeSonarr
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", redis_url=redis_url)
    a = await make_client(settings)
    b = await make_client(settings)
    await configure(a, sonarr=[instance(sonarr, "Sonarr")])
    # The other process hears of the change and starts its own pollers.
    await wait_for(lambda: _running(b))
    before = dict(sonarr.calls)
    started = time.monotonic()
    await reload_widgets([a, b], PLUGIN, WIDGETS, 1.5, each=4)
    most = int((time.monotonic() - started) / FAST) + 2
    for call in POLLED.values():
        calls = sonarr.calls[call] - before.get(call, 0)
        assert 2 <= calls <= most, (call, calls, most)


async def _running(client: TestClient) -> bool:
    return client.app[REGISTRY].running_pollers(PLUGIN) == len(WIDGETS)


@pytest.mark.usefixtures("fast_polls")
async def test_turning_the_plugin_off_stops_its_pollers(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    assert await _running(client)
    await wait_for(lambda: _more_than(radarr, "GET /api/v3/queue", 2))

    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/disable")).status == 200
    assert client.app[REGISTRY].running_pollers(PLUGIN) == 0
    calls = sum(sonarr.calls.values()) + sum(radarr.calls.values())
    await asyncio.sleep(FAST * 4)
    assert sum(sonarr.calls.values()) + sum(radarr.calls.values()) == calls
    assert (await client.get(f"/widgets/{PLUGIN}/queue")).status == 404

    # On again: polling resumes.
    stopped_at = radarr.calls["GET /api/v3/queue"]
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    await wait_for(lambda: _more_than(radarr, "GET /api/v3/queue", stopped_at + 1))


async def _more_than(fake: FakeArr, call: str, count: int) -> bool:
    return fake.calls[call] > count


@pytest.mark.usefixtures("fast_polls")
async def test_a_download_started_in_radarr_reaches_open_dashboards(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    assert "Nothing is downloading." in panel(await raw_fragment(client, "queue"), "Radarr")
    async with client.ws_connect("/ws") as ws:
        await subscribe(ws, [pollers.QUEUE_TOPIC, pollers.WANTED_TOPIC])
        events = Events(ws)

        film = radarr.add_to_library(157336)
        queued = radarr.add_queue_item(film, downloaded=0.5)
        event = await events.next(pollers.QUEUE_TOPIC, instance="Radarr", count=1)
        assert event["event"] == "updated"
        assert event["data"] == {"instance": "Radarr", "kind": "radarr", "ok": True, "count": 1}
        assert "Interstellar (2014) 50 % 50 % Downloading" in panel(
            await raw_fragment(client, "queue"), "Radarr"
        )
        # The film is missing until it is imported; then it leaves the queue.
        await events.next(pollers.WANTED_TOPIC, instance="Radarr", missing=1)
        radarr.advance_download(queued, 0.5)

        async def importing() -> bool:
            return "Importing" in panel(await raw_fragment(client, "queue"), "Radarr")

        await wait_for(importing)
        radarr.import_download(queued)
        await events.next(pollers.QUEUE_TOPIC, instance="Radarr", count=0)
        await events.next(pollers.WANTED_TOPIC, instance="Radarr", missing=0)
        assert "Nothing is downloading." in panel(await raw_fragment(client, "queue"), "Radarr")


# --- fulfilment -------------------------------------------------------------------------------


class RecordingRadarr(FakeRadarr):
    """The fake Radarr, keeping the bodies of the updates it was sent."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.updates: list[dict[str, Any]] = []

    async def put_movie(self, request: Any) -> Any:
        self.updates.append(await request.json())
        return await super().put_movie(request)


class RecordingSonarr(FakeSonarr):
    """The fake Sonarr, keeping the bodies of the updates it was sent."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.updates: list[dict[str, Any]] = []

    async def put_series(self, request: Any) -> Any:
        self.updates.append(await request.json())
        return await super().put_series(request)


# Sonarr 3 takes languageProfileId; the spec, generated from Sonarr 4, marks it read-only.
SONARR_3_WRITES = {("SeriesResource", "languageProfileId"): {"type": "integer"}}


async def test_radarr_adds_a_film_with_exactly_the_fields_of_the_spec_once(
    sqlite_settings: Settings, make_client: MakeClient, radarr: FakeRadarr
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, radarr=[instance(radarr, "Radarr", tags=[2])])

    result = await fulfil(client, MATRIX)
    assert result == FulfilmentResult(
        True, "The Matrix was added to Radarr and is being searched for.", "1"
    )
    [body] = radarr.added_movies
    assert body == {
        "title": "The Matrix",
        "tmdbId": 603,
        "qualityProfileId": 4,
        "rootFolderPath": "/movies",
        "monitored": True,
        "minimumAvailability": "released",
        "tags": [2],
        "addOptions": {"searchForMovie": True},
    }
    assert Contract("radarr-3").request_errors("POST", "/api/v3/movie", body) == []
    [movie] = radarr.movies.values()
    assert (movie.film.title, movie.monitored, movie.root_folder) == ("The Matrix", True, "/movies")
    assert "MoviesSearch" in radarr.command_names()

    # Fulfilled again (a second approval, a retry after a crash): nothing is added twice.
    again = await fulfil(client, MATRIX)
    assert again == FulfilmentResult(True, "The Matrix is already in Radarr.", "1")
    assert len(radarr.added_movies) == 1
    assert radarr.calls["POST /api/v3/movie"] == 1


async def test_a_film_in_radarr_unmonitored_is_monitored_and_searched_for(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    async with RecordingRadarr() as radarr:
        movie_id = radarr.add_to_library(603, monitored=False)
        client = await make_client(sqlite_settings)
        await configure(client, radarr=[instance(radarr, "Radarr")])
        result = await fulfil(client, MATRIX)
        assert result == FulfilmentResult(
            True,
            "The Matrix was in Radarr unmonitored; it is monitored now and being searched for.",
            str(movie_id),
        )
        assert radarr.added_movies == []
        assert radarr.movies[movie_id].monitored
        assert radarr.commands == [{"name": "MoviesSearch", "movieIds": [movie_id]}]
        [update] = radarr.updates
        assert Contract("radarr-3").request_errors("PUT", "/api/v3/movie/{id}", update) == []
        # Again: it is monitored now, so nothing more happens.
        assert (await fulfil(client, MATRIX)).message == "The Matrix is already in Radarr."
        assert len(radarr.updates) == 1 and len(radarr.commands) == 1


@pytest.mark.parametrize("version", ["3.0.10.1567", SONARR_4], ids=["sonarr-3", "sonarr-4"])
async def test_sonarr_adds_a_series_with_exactly_the_requested_seasons_once(
    version: str, sqlite_settings: Settings, make_client: MakeClient
) -> None:
    async with FakeSonarr(version=version) as sonarr:
        client = await make_client(sqlite_settings)
        await configure(client, sonarr=[instance(sonarr, "Sonarr")])

        result = await fulfil(client, BREAKING_BAD)
        assert result == FulfilmentResult(
            True,
            "Breaking Bad was added to Sonarr with seasons 1, 2 monitored and is being"
            " searched for.",
            "1",
        )
        [body] = sonarr.added_series
        expected: dict[str, Any] = {
            "title": "Breaking Bad",
            "tvdbId": 81189,
            "qualityProfileId": 4,
            "rootFolderPath": "/tv",
            "monitored": True,
            "seasonFolder": True,
            "seriesType": "standard",
            "tags": [],
            "seasons": [{"seasonNumber": n, "monitored": n in (1, 2)} for n in range(1, 6)],
            "addOptions": {"searchForMissingEpisodes": True, "monitor": "unknown"},
        }
        if version.startswith("3."):
            # Sonarr 3 needs a language profile (the server's first, none being chosen);
            # Sonarr 4 has none.
            expected["languageProfileId"] = 1
            contract = Contract("sonarr-3", write_allowances=SONARR_3_WRITES)
        else:
            contract = Contract("sonarr-4")
        assert body == expected
        assert contract.request_errors("POST", "/api/v3/series", body) == []
        [series] = sonarr.series.values()
        assert series.season_monitored == {1: True, 2: True, 3: False, 4: False, 5: False}
        assert "MissingEpisodeSearch" in sonarr.command_names()

        again = await fulfil(client, BREAKING_BAD)
        assert again == FulfilmentResult(
            True, "Breaking Bad is already in Sonarr with seasons 1, 2 monitored.", "1"
        )
        assert sonarr.calls["POST /api/v3/series"] == 1
        assert sonarr.calls["PUT /api/v3/series/1"] == 0


@pytest.mark.parametrize("version", ["3.0.10.1567", SONARR_4], ids=["sonarr-3", "sonarr-4"])
async def test_a_series_already_in_sonarr_gets_the_new_seasons_monitored_and_searched(
    version: str, sqlite_settings: Settings, make_client: MakeClient
) -> None:
    async with RecordingSonarr(version=version) as sonarr:
        series_id = sonarr.add_to_library(81189, monitored_seasons=[1])
        client = await make_client(sqlite_settings)
        await configure(client, sonarr=[instance(sonarr, "Sonarr")])

        more = request("tv", "Breaking Bad", {"tvdb": "81189"}, seasons=[1, 2, 3])
        result = await fulfil(client, more)
        assert result == FulfilmentResult(
            True,
            "Breaking Bad is in Sonarr; seasons 2, 3 monitored now and being searched for.",
            str(series_id),
        )
        assert sonarr.added_series == []
        series = sonarr.series[series_id]
        assert series.season_monitored == {1: True, 2: True, 3: True, 4: False, 5: False}
        season_2 = [e for e in sonarr.episodes.values() if e.season == 2]
        assert season_2 and all(e.monitored for e in season_2)
        assert sonarr.commands == [{"name": "SeriesSearch", "seriesId": series_id}]
        [update] = sonarr.updates
        writes = SONARR_3_WRITES if version.startswith("3.") else {}
        contract = Contract(f"sonarr-{version[0]}", write_allowances=writes)
        assert contract.request_errors("PUT", "/api/v3/series/{id}", update) == []

        # The same request again: nothing new to monitor, nothing sent.
        again = await fulfil(client, more)
        assert again.ok and "already in Sonarr with seasons 1, 2, 3 monitored" in again.message
        assert len(sonarr.updates) == 1 and len(sonarr.commands) == 1


async def test_requests_go_to_the_instance_made_for_them(
    sqlite_settings: Settings,
    make_client: MakeClient,
    sonarr: FakeSonarr,
    radarr: FakeRadarr,
    radarr_4k: FakeRadarr,
) -> None:
    async with FakeSonarr(root_folders=["/anime"], api_key="a" * 32) as anime:
        client = await make_client(sqlite_settings)
        await configure(
            client,
            sonarr=[instance(sonarr, "Sonarr"), instance(anime, "Sonarr Anime", is_anime=True)],
            radarr=[
                instance(radarr, "Radarr"),
                instance(radarr_4k, "Radarr 4K", is_4k=True, quality_profile_id=5),
            ],
        )
        result = await fulfil(client, request("movie", "Dune", {"tmdb": "438631"}, is_4k=True))
        assert result.message == "Dune was added to Radarr 4K and is being searched for."
        [body] = radarr_4k.added_movies
        assert (body["tmdbId"], body["qualityProfileId"], body["rootFolderPath"]) == (
            438631,
            5,
            "/movies-4k",
        )
        assert radarr.added_movies == []
        # The same film, not in 4K, is the everyday Radarr's: each instance has its own copy.
        result = await fulfil(client, request("movie", "Dune", {"tmdb": "438631"}))
        assert result.message == "Dune was added to Radarr and is being searched for."
        assert len(radarr.added_movies) == 1 and len(radarr_4k.added_movies) == 1

        spirited = request("tv", "Chernobyl", {"tvdb": "360893"}, is_anime=True)
        assert (await fulfil(client, spirited)).message.endswith(
            "added to Sonarr Anime with season 1 monitored and is being searched for."
        )
        [body] = anime.added_series
        assert (body["seriesType"], body["rootFolderPath"]) == ("anime", "/anime")
        assert sonarr.added_series == []
        # A 4K series with no 4K Sonarr: the everyday one.
        result = await fulfil(client, request("tv", "The Wire", {"tvdb": "79126"}, is_4k=True))
        assert result.message.startswith("The Wire was added to Sonarr with seasons 1, 2, 3, 4, 5")

        # Health names all four, and the widgets have a panel each.
        health = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
        assert [c["name"] for c in health["checks"]] == [
            "Sonarr",
            "Sonarr Anime",
            "Radarr",
            "Radarr 4K",
        ]
        raw = await raw_fragment(client, "wanted")
        assert panel(raw, "Radarr 4K") == "Radarr 4K 1 film missing"
        assert panel(raw, "Sonarr Anime") == "Sonarr Anime 5 episodes missing"


async def test_fulfilment_that_cannot_be_done_says_why_and_never_raises(
    sqlite_settings: Settings, make_client: MakeClient, radarr: FakeRadarr
) -> None:
    client = await make_client(sqlite_settings)
    where = "in the settings of Radarr under Integrations."

    await configure(client, radarr=[instance(radarr, "Radarr", quality_profile_id=None)])
    assert await fulfil(client, MATRIX) == FulfilmentResult(
        False, f"Radarr has no quality profile chosen: choose one {where}"
    )
    await configure(client, radarr=[instance(radarr, "Radarr")])
    radarr.root_folders = ["/elsewhere"]
    assert await fulfil(client, MATRIX) == FulfilmentResult(
        False, f"Radarr has no root folder /movies (it has: /elsewhere); choose another {where}"
    )
    radarr.root_folders = ["/movies"]
    assert await fulfil(client, request("movie", "Nothing", {"tmdb": "999999"})) == (
        FulfilmentResult(False, "Radarr found no film with TMDB id 999999.")
    )
    assert await fulfil(client, request("movie", "The Matrix", {"imdb": "tt0133093"})) == (
        FulfilmentResult(False, "The Matrix has no TMDB id, which Radarr needs.")
    )
    real = radarr.api_key
    radarr.api_key = "c" * 32
    assert await fulfil(client, MATRIX) == FulfilmentResult(
        False,
        "Could not add The Matrix: Radarr refused MediaNest's credentials (check the API key or"
        " token)",
    )
    radarr.api_key = real
    await radarr.stop()
    assert await fulfil(client, MATRIX) == FulfilmentResult(
        False, "Could not add The Matrix: Radarr is unreachable"
    )
    assert radarr.added_movies == []
    # What no instance serves is left to other plugins.
    registry = client.app[REGISTRY]
    assert await registry.call_first(hookspecs.fulfil_request, request=BREAKING_BAD) is None


async def test_fulfilments_read_profiles_and_folders_once_and_find_a_new_folder_at_once(
    sqlite_settings: Settings, make_client: MakeClient, radarr: FakeRadarr
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, radarr=[instance(radarr, "Radarr")])
    before = radarr.calls.copy()
    assert (await fulfil(client, MATRIX)).ok
    assert (await fulfil(client, request("movie", "Inception", {"tmdb": "27205"}))).ok
    read = radarr.calls - before
    assert (read["GET /api/v3/qualityprofile"], read["GET /api/v3/rootfolder"]) == (1, 1)
    assert read["POST /api/v3/movie"] == 2

    # A folder made in Radarr since the list was read is not refused: it is looked for again.
    radarr.root_folders.append("/films")
    await configure(client, radarr=[instance(radarr, "Radarr", root_folder="/films")])
    interstellar = request("movie", "Interstellar", {"tmdb": "157336"})
    assert await fulfil(client, interstellar) == FulfilmentResult(
        True, "Interstellar was added to Radarr and is being searched for.", "3"
    )
    assert radarr.added_movies[-1]["rootFolderPath"] == "/films"


async def test_request_progress_maps_queue_items_back_to_the_request(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    matrix = radarr.add_to_library(603)
    radarr.add_queue_item(matrix, downloaded=0.4)
    other = radarr.add_to_library(27205)
    radarr.add_queue_item(other, downloaded=0.9)
    series = sonarr.add_to_library(81189)
    sonarr.add_queue_item(sonarr.episode_id(series, 1, 1), downloaded=0.5)
    paused = sonarr.add_queue_item(sonarr.episode_id(series, 1, 2), downloaded=0.1)
    sonarr.set_download_state(paused, status="paused")
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    registry = client.app[REGISTRY]

    now = datetime.now(UTC)
    [(name, found)] = await registry.call_each(
        hookspecs.request_progress, ids={"tmdb": "603"}, media_type="movie"
    )
    assert name == PLUGIN
    [progress] = found
    assert isinstance(progress, Progress)
    assert (progress.percent, progress.state, progress.instance, progress.title) == (
        40.0,
        "downloading",
        "Radarr",
        "The Matrix (1999)",
    )
    # 60 % of 8 GiB at 4 MiB/s: about 20 minutes.
    assert progress.eta is not None
    assert now + timedelta(minutes=19) < progress.eta < now + timedelta(minutes=22)

    [(_, episodes)] = await registry.call_each(
        hookspecs.request_progress, ids={"tvdb": "81189"}, media_type="tv"
    )
    assert sorted((p.title, p.percent, p.state) for p in episodes) == [
        ("Breaking Bad S01E01 · Pilot", 50.0, "downloading"),
        ("Breaking Bad S01E02 · Cat's in the Bag...", 10.0, "paused"),
    ]
    # Not queued anywhere: no answer.
    assert (
        await registry.call_each(
            hookspecs.request_progress, ids={"tmdb": "157336"}, media_type="movie"
        )
        == []
    )


# --- the webhook receiver ---------------------------------------------------------------------


def grab(radarr: FakeRadarr, tmdb_id: int) -> dict[str, Any]:
    """What Radarr's "Connect → Webhook" posts when it grabs a film of its library."""
    movie = next(m for m in radarr.movies.values() if m.film.tmdb_id == tmdb_id)
    return {
        "eventType": "Grab",
        "instanceName": "Radarr",
        "applicationUrl": "",
        "movie": {
            "id": movie.id,
            "title": movie.film.title,
            "year": movie.film.year,
            "releaseDate": "2015-03-31",
            "folderPath": movie.path,
            "tmdbId": tmdb_id,
            "imdbId": movie.film.imdb_id,
        },
        "remoteMovie": {"tmdbId": tmdb_id, "title": movie.film.title, "year": movie.film.year},
        "release": {
            "quality": "Bluray-1080p",
            "qualityVersion": 1,
            "releaseTitle": "Interstellar.2014.Bluray-1080p.x264-GRP",
            "indexer": "1337x",
            "size": 8589934592,
        },
        "downloadClient": "qBittorrent",
        "downloadClientType": "qBittorrent",
        "downloadId": "9A8B7C6D5E4F",
    }


async def test_the_webhook_refuses_a_wrong_secret_and_pushes_a_grab_at_once(
    sqlite_settings: Settings, make_client: MakeClient, sonarr: FakeSonarr, radarr: FakeRadarr
) -> None:
    # The usual intervals: what arrives before the next poll came through the webhook.
    client = await make_client(sqlite_settings)
    await configure(
        client,
        sonarr=[instance(sonarr, "Sonarr", webhook_secret="sonarr's own")],
        radarr=[instance(radarr, "Radarr")],
    )
    await wait_for(lambda: _polled(sonarr, radarr))
    film = radarr.add_to_library(157336)
    url = "/arr/webhook/radarr/0"
    payload = grab(radarr, 157336)
    # A server posting has no session and no CSRF token: only the secret lets it in.
    outsider = Client(client.server)
    await outsider.start_server()  # the server runs already: this only binds the client
    try:
        for path, sent in (
            (url, {}),
            (url, {"params": {"secret": "wrong"}}),
            (url, {"headers": {"X-MediaNest-Secret": SECRET + "x"}}),
            (url, {"headers": basic_auth("radarr", "wrong")}),
            # Radarr's secret is not Sonarr's: each instance checks its own.
            ("/arr/webhook/sonarr/0", {"params": {"secret": SECRET}}),
        ):
            resp = await outsider.post(path, json=payload, **sent)
            assert resp.status == 401, (path, sent, await resp.text())
        resp = await outsider.post("/arr/webhook/radarr/7", json=payload, params={"secret": SECRET})
        assert resp.status == 404

        async with client.ws_connect("/ws") as ws:
            await subscribe(ws, [pollers.QUEUE_TOPIC])
            events = Events(ws)
            queue_calls = radarr.calls["GET /api/v3/queue"]
            radarr.add_queue_item(film, downloaded=0.2)
            resp = await outsider.post(url, json=payload, params={"secret": SECRET})
            assert resp.status == 200, await resp.text()
            assert await resp.json() == {"received": "Grab", "instance": "Radarr"}
            event = await events.next(pollers.QUEUE_TOPIC, "grabbed", within=1)
            assert event["data"] == {
                "instance": "Radarr",
                "kind": "radarr",
                "event_type": "Grab",
                "title": "Interstellar (2014)",
                "ids": {"tmdb": "157336"},
                "upgrade": False,
            }
            # The queue is read again at once, not at the next poll, and the widget shows it.
            await events.next(pollers.QUEUE_TOPIC, "updated", within=2, instance="Radarr", count=1)
            assert radarr.calls["GET /api/v3/queue"] == queue_calls + 1
            shown = panel(await raw_fragment(client, "queue"), "Radarr")
            assert "Interstellar (2014) 20 %" in shown

            # The secret as the password of HTTP Basic auth (Sonarr 3 and Radarr 3 offer only
            # those); a Sonarr import, which also changes what is missing.
            series = sonarr.add_to_library(360893)
            imported = {
                "eventType": "Download",
                "series": {"id": series, "title": "Chernobyl", "tvdbId": 360893},
                "episodes": [{"id": 1, "episodeNumber": 1, "seasonNumber": 1, "title": "1:23:45"}],
                "isUpgrade": False,
            }
            resp = await outsider.post(
                "/arr/webhook/sonarr/0", json=imported, headers=basic_auth("sonarr", "sonarr's own")
            )
            assert resp.status == 200, await resp.text()
            event = await events.next(pollers.QUEUE_TOPIC, "imported", instance="Sonarr")
            assert (event["data"]["title"], event["data"]["ids"]) == (
                "Chernobyl S01E01",
                {"tvdb": "360893"},
            )

            async def missing_refreshed() -> bool:
                return "Sonarr 5 episodes missing" in await fragment(client, "wanted")

            await wait_for(missing_refreshed)

            # The "Test" button of the webhook settings, the secret in a header: heard, and
            # nothing else read.
            calls = sum(radarr.calls.values())
            resp = await outsider.post(
                url, json={"eventType": "Test"}, headers={"X-MediaNest-Secret": SECRET}
            )
            assert resp.status == 200
            await events.next(pollers.QUEUE_TOPIC, "test", instance="Radarr")
            assert sum(radarr.calls.values()) == calls
            # Not a notification at all.
            resp = await outsider.post(url, data=b"<xml/>", params={"secret": SECRET})
            assert resp.status == 400
    finally:
        await outsider.session.close()


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- the admin form's options -----------------------------------------------------------------


async def test_options_offer_the_instances_live_profiles_folders_and_tags(
    sqlite_settings: Settings, make_client: MakeClient, radarr: FakeRadarr
) -> None:
    async with FakeSonarr() as sonarr, FakeSonarr(version=SONARR_4, api_key="d" * 32) as v4:
        client = await make_client(sqlite_settings)
        await configure(
            client,
            sonarr=[instance(sonarr, "Sonarr"), instance(v4, "Sonarr 4")],
            radarr=[instance(radarr, "Radarr")],
        )
        resp = await client.get("/arr/options", params={"kind": "sonarr", "index": "0"})
        assert resp.status == 200, await resp.text()
        profiles = ["Any", "SD", "HD-720p", "HD-1080p", "Ultra-HD", "HD - 720p/1080p"]
        assert await resp.json() == {
            "kind": "sonarr",
            "instance": "Sonarr",
            "version": sonarr.version,
            "quality_profiles": [{"id": n, "name": p} for n, p in enumerate(profiles, start=1)],
            "root_folders": [{"id": 1, "path": "/tv", "free_space": 1_832_701_952_000}],
            "language_profiles": [{"id": 1, "name": "English"}, {"id": 2, "name": "Any"}],
            "tags": [{"id": 1, "name": "kids"}, {"id": 2, "name": "4k"}],
        }
        # Read live: what the server has now.
        sonarr.root_folders.append("/tv2")
        sonarr.tags.append("anime")
        answer = await (
            await client.get("/arr/options", params={"kind": "sonarr", "index": "0"})
        ).json()
        assert [f["path"] for f in answer["root_folders"]] == ["/tv", "/tv2"]
        assert answer["tags"][-1] == {"id": 3, "name": "anime"}
        # Sonarr 4 has no language profiles; Radarr has its own folders.
        answer = await (
            await client.get("/arr/options", params={"kind": "sonarr", "index": "1"})
        ).json()
        assert (answer["instance"], answer["language_profiles"]) == ("Sonarr 4", [])
        answer = await (
            await client.get("/arr/options", params={"kind": "radarr", "index": "0"})
        ).json()
        assert [f["path"] for f in answer["root_folders"]] == ["/movies"]

        # What is not there, a server that is down, and who may ask.
        json = {"Accept": "application/json"}
        resp = await client.get(
            "/arr/options", params={"kind": "radarr", "index": "1"}, headers=json
        )
        assert resp.status == 404
        assert (await resp.json())["error"]["message"] == (
            "There is no Radarr instance number 1 in the settings."
        )
        resp = await client.get(
            "/arr/options", params={"kind": "lidarr", "index": "0"}, headers=json
        )
        assert resp.status == 422
        await radarr.stop()
        resp = await client.get(
            "/arr/options", params={"kind": "radarr", "index": "0"}, headers=json
        )
        assert resp.status == 502
        assert (await resp.json())["error"]["message"] == "Radarr is unreachable"
        await add_user(client.app, *FRIEND)
        friend = Client(client.server)
        await friend.start_server()
        try:
            await friend.sign_in(*FRIEND)
            resp = await friend.get(
                "/arr/options", params={"kind": "sonarr", "index": "0"}, headers=json
            )
            assert resp.status == 403
        finally:
            await friend.session.close()

        # Published in the OpenAPI document with its response model.
        document = await (await client.get("/api/openapi.json")).json()
        operation = document["paths"]["/arr/options"]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/InstanceOptions"
        }
        assert {p["name"] for p in operation["parameters"]} == {"kind", "index"}


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_polls")
@pytest.mark.parametrize(
    ("sonarr_version", "radarr_version"),
    [("3.0.10.1567", "3.2.2.5080"), (SONARR_4, "5.14.0.9383")],
    ids=["sonarr-3,radarr-3", "sonarr-4,radarr-5"],
)
async def test_the_plugin_calls_only_what_the_published_specs_describe(
    sonarr_version: str, radarr_version: str, sqlite_settings: Settings, make_client: MakeClient
) -> None:
    async with (
        RecordingSonarr(version=sonarr_version) as sonarr,
        RecordingRadarr(version=radarr_version) as radarr,
    ):
        stock(sonarr, radarr)
        radarr.add_to_library(157336, monitored=False)
        client = await portal(make_client, sqlite_settings, sonarr, radarr)
        # Everything the plugin does: widgets, health, options, fulfilment (add, monitor more
        # seasons, monitor a film), progress and a webhook.
        for widget in WIDGETS:
            await fragment(client, widget)
        assert (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).status == 200
        for kind in ("sonarr", "radarr"):
            resp = await client.get("/arr/options", params={"kind": kind, "index": "0"})
            assert resp.status == 200
        for info in (
            MATRIX,
            request("movie", "Interstellar", {"tmdb": "157336"}),
            request("tv", "Breaking Bad", {"tvdb": "81189"}, seasons=[1, 2, 3]),
            request("tv", "Chernobyl", {"tvdb": "360893"}),
        ):
            assert (await fulfil(client, info)).ok
        registry = client.app[REGISTRY]
        await registry.call_each(
            hookspecs.request_progress, ids={"tmdb": "693134"}, media_type="movie"
        )
        resp = await client.post(
            "/arr/webhook/radarr/0", json=grab(radarr, 603), params={"secret": SECRET}
        )
        assert resp.status == 200
        await wait_for(lambda: _more_than(radarr, "GET /api/v3/queue", 3))

        for fake, era in (
            (sonarr, f"sonarr-{sonarr_version[0]}"),
            (radarr, f"radarr-{radarr_version[0]}"),
        ):
            contract = Contract(era)
            called = sorted(fake.calls)
            outside = []
            for call in called:
                method, path = call.split(" ", 1)
                template = contract.template(path)
                if template is None or method.lower() not in contract.spec["paths"][template]:
                    outside.append(call)
            assert outside == [], era
            # ...and only what the fake serves (nothing answered 404 or 405 for want of a route).
            served = {
                (route.method, route.resource.canonical) for route in fake.app().router.routes()
            }
            for call in called:
                method, path = call.split(" ", 1)
                assert any(
                    m == method and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", c), path)
                    for m, c in served
                ), call


# --- the keys ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_polls")
async def test_keys_and_secrets_never_show_in_pages_answers_or_logs(
    sqlite_settings: Settings,
    make_client: MakeClient,
    sonarr: FakeSonarr,
    radarr: FakeRadarr,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stock(sonarr, radarr)
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    pages = ["/", "/admin/plugins", "/api/v1/plugins", f"/api/v1/plugins/{PLUGIN}"]
    pages += ["/api/v1/dashboard", f"/api/v1/plugins/{PLUGIN}/health", "/api/openapi.json"]
    pages += [f"/widgets/{PLUGIN}/{w}" for w in WIDGETS]
    pages += ["/arr/options?kind=sonarr&index=0", "/arr/options?kind=radarr&index=0"]

    async def everything_shown() -> str:
        shown = []
        for path in pages:
            resp = await client.get(path)
            assert resp.status == 200, path
            shown.append(await resp.text())
        return "\n".join(shown)

    shown = [await everything_shown()]
    assert "Dune: Part Two" in shown[0] and "Breaking Bad" in shown[0]
    # The error paths too: Radarr's key refused, then Sonarr gone.
    real = radarr.api_key
    radarr.api_key = "e" * 32

    async def radarr_refused() -> bool:
        return "Radarr refused" in await fragment(client, "queue")

    await wait_for(radarr_refused)
    pages.remove("/arr/options?kind=radarr&index=0")
    shown.append(await everything_shown())
    await sonarr.stop()
    await wait_for(lambda: _says(client, "Sonarr is unreachable"))
    pages.remove("/arr/options?kind=sonarr&index=0")
    shown.append(await everything_shown())
    assert (await fulfil(client, BREAKING_BAD)).ok is False

    for secret in (real, sonarr.api_key, SECRET):
        for page in shown:
            assert secret not in page
        assert secret not in caplog.text
    # The calls were logged, without their key.
    assert "/api/v3/queue" in caplog.text
    assert "arr.queue (Sonarr): Sonarr is unreachable" in caplog.text


async def _says(client: TestClient, words: str) -> bool:
    return words in await fragment(client, "queue")


# --- in a browser -----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.usefixtures("fast_polls")
async def test_each_widget_on_the_dashboard_updates_live_in_a_browser(
    sqlite_settings: Settings,
    make_client: MakeClient,
    chromium: str,
    sonarr: FakeSonarr,
    radarr: FakeRadarr,
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        require(False, "Playwright is not installed (pip install playwright)")
    series = sonarr.add_to_library(360893, downloaded_seasons=[1])  # Chernobyl, complete
    client = await portal(make_client, sqlite_settings, sonarr, radarr)
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(base_url=str(client.make_url("")))
            context.set_default_timeout(10_000)
            page = await context.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"{msg.type}: {msg.text}")
                    if msg.type in ("error", "warning")
                    else None
                ),
            )
            signed_in = await page.request.post(
                "/api/v1/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]}
            )
            assert signed_in.ok
            await page.goto("/")
            widget = {name: page.locator(f"#widget-{PLUGIN}-{name}") for name in WIDGETS}
            await expect(widget["queue"]).to_contain_text("Nothing is downloading.")
            await expect(widget["health"]).to_contain_text("No health warnings.")
            await expect(page.locator("html")).to_have_attribute(
                "data-subscribed", re.compile(re.escape(pollers.HEALTH_TOPIC))
            )

            # What changes at the servers shows on the open page, without a reload.
            await page.evaluate("window.sameDocument = true")
            film = radarr.add_to_library(157336)
            radarr.add_queue_item(film, downloaded=0.3)
            soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
            sonarr.set_air_date(sonarr.episode_id(series, 1, 5), soon)
            sonarr.root_folders.append("/tv-more")
            sonarr.add_health_warning("UpdateCheck", "New update is available")
            await expect(widget["queue"]).to_contain_text("Interstellar (2014)")
            await expect(widget["upcoming"]).to_contain_text("Chernobyl S01E05 · Vichnaya Pamyat")
            await expect(widget["wanted"].locator('[data-kind="radarr"]')).to_contain_text(
                "1 film missing"
            )
            await expect(widget["disk"]).to_contain_text("/tv-more: 1.7 TB free")
            await expect(widget["health"]).to_contain_text("UpdateCheck: New update is available")
            assert await page.evaluate("window.sameDocument === true")
        finally:
            await browser.close()
    assert problems == []


@pytest.mark.browser
async def test_the_admin_form_offers_the_profiles_and_folders_read_from_the_server(
    sqlite_settings: Settings,
    make_client: MakeClient,
    chromium: str,
    sonarr: FakeSonarr,
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        require(False, "Playwright is not installed (pip install playwright)")
    client = await portal(make_client, sqlite_settings, sonarr)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(base_url=str(client.make_url("")))
            context.set_default_timeout(10_000)
            page = await context.new_page()
            signed_in = await page.request.post(
                "/api/v1/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]}
            )
            assert signed_in.ok
            await page.goto("/admin/plugins")
            await page.locator("#plugin-arr summary").click()
            profile = page.locator('select[name="sonarr.0.quality_profile_id"]')
            folder = page.locator('select[name="sonarr.0.root_folder"]')
            await expect(profile.locator("option:checked")).to_have_text("HD-1080p")
            await expect(profile.locator("option")).to_contain_text(["Any", "SD", "Ultra-HD"])
            await expect(folder.locator("option:checked")).to_have_text(sonarr.root_folders[0])

            # Choosing another profile and saving keeps the choice (and the masked key).
            await profile.select_option(label="Ultra-HD")
            async with page.expect_navigation():
                await page.locator('#plugin-arr form.settings button[type="submit"]').click()
            errors = await page.locator("#plugin-arr .form-errors").all_text_contents()
            assert errors == [], " ".join(" ".join(e.split()) for e in errors)
        finally:
            await browser.close()
    saved = (await (await client.get(SETTINGS_URL.replace("/settings", ""))).json())["settings"]
    assert saved["sonarr"][0]["quality_profile_id"] == 5
    assert saved["sonarr"][0]["api_key"] == "••••"
