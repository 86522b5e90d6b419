"""The Tautulli integration against the fake Tautulli, over real HTTP.

Settings are saved only after a real connection test; the three widgets (current activity, watch
statistics, recently watched) render with data, with an empty server and with Tautulli down;
people who are not admins see counts and titles, never who watches what; pollers keep the data
fresh with one upstream call per interval, stop when the plugin is turned off, and push changes
to open dashboards; the plugin calls only what the Tautulli contract describes, and its API key
shows up in no log and no page.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import medianest_plugins.tautulli as tautulli_plugin
import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from conftest import ADMIN, Client, MakeClient, add_user, reload_widgets, require, wait_for
from medianest_plugins.tautulli import pollers
from medianest_plugins.tautulli.settings import Settings as TautulliSettings
from servers import Api

from medianest.app import create_app
from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings, load_settings
from medianest.testing import FakeTautulli

PLUGIN = "tautulli"
SETTINGS_URL = f"/api/v1/plugins/{PLUGIN}/settings"
WIDGETS = ("activity", "stats", "history")
# A poll interval short enough for tests to watch several of them go by.
FAST = 0.25
FRIEND = ("friend", "a friend's long password")
# Everyone the fake knows, by every name Tautulli may show them under.
PEOPLE = ("Alice", "alice", "Bob", "bob", "Media Owner", "mediaowner")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTautulli]:
    server = FakeTautulli()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll every FAST seconds instead of every 10 s / 1 min / 10 min (below what the settings
    allow)."""
    for coordinator in (pollers.ACTIVITY, pollers.HISTORY, pollers.STATS):
        monkeypatch.setattr(coordinator, "interval", FAST)


async def configure(client: Client, fake: FakeTautulli, *, enable: bool = True) -> None:
    await client.configure(PLUGIN, {"url": fake.url, "api_key": fake.apikey}, enable=enable)


async def portal(make_client: MakeClient, settings: Settings, fake: FakeTautulli) -> Client:
    """A MediaNest with the Tautulli integration on, pointed at ``fake``; signed in as admin."""
    client = await make_client(settings)
    await configure(client, fake)
    # The pollers' first round (one call each) has been made.
    await wait_for(lambda: _polled(fake, "get_activity", "get_home_stats", "get_history"))
    return client


async def _polled(fake: FakeTautulli, *commands: str) -> bool:
    return all(fake.commands[c] >= 1 for c in commands)


def text(page: str) -> str:
    """A page's text as people read it: no tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def raw_fragment(client: TestClient, widget: str) -> str:
    """A widget's HTML, as the dashboard fetches it when the widget's topic announces news."""
    resp = await client.get(f"/widgets/{PLUGIN}/{widget}")
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def fragment(client: TestClient, widget: str) -> str:
    return text(await raw_fragment(client, widget))


async def plain_user(client: Client) -> Client:
    """Another browser on the same MediaNest, signed in as a user who is not an admin."""
    await add_user(client.app, *FRIEND)
    other = Client(client.server)
    await other.start_server()  # the server runs already: this only binds the client
    await other.sign_in(*FRIEND)
    return other


def ranking(rows: list[str]) -> list[tuple[str, int]]:
    """``"Interstellar (2014) — 7 plays, 19 h 43 min"`` rows as (name, plays), checked to be
    in order, most plays first."""
    ranked = []
    for row in rows:
        found = re.fullmatch(r"(.+) — (\d+) plays?, .+", row)
        assert found, row
        ranked.append((found[1], int(found[2])))
    counts = [count for _, count in ranked]
    assert counts == sorted(counts, reverse=True), ranked
    return ranked


def items(page: str, css_class: str) -> list[str]:
    """The items of the list with ``css_class`` in a widget's HTML, as text."""
    found = re.search(rf'<(ol|ul) class="{css_class}">(.*?)</\1>', page, re.S)
    assert found, f"no list {css_class} in {page}"
    return [text(item) for item in re.findall(r"<li[^>]*>(.*?)</li>", found[2], re.S)]


class Events:
    """Everything a websocket receives, read in the background, so no event is missed while
    a test waits for another."""

    def __init__(self, ws: Any) -> None:
        self.received: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read(ws))

    async def _read(self, ws: Any) -> None:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                self.received.append(orjson.loads(msg.data))

    def mark(self) -> int:
        return len(self.received)

    async def wait(self, topic: str, since: int = 0, **expected: Any) -> dict[str, Any]:
        """The first event on ``topic`` (after ``since``) whose data has the ``expected`` values."""
        found: list[dict[str, Any]] = []

        async def arrived() -> bool:
            found[:] = [
                m
                for m in self.received[since:]
                if m.get("topic") == topic
                and all(m["data"].get(k) == v for k, v in expected.items())
            ]
            return bool(found)

        await wait_for(arrived)
        return found[0]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# --- settings and the connection test --------------------------------------------------------


async def _refusal(client: Client, body: dict[str, Any]) -> str:
    refused = await client.refusal(PLUGIN, body)
    assert refused.status == 422
    assert "could not connect with these settings; nothing was saved" in refused.message
    return str(refused.details[0]["message"])


async def test_settings_are_saved_only_after_a_real_connection_test(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    client = await make_client(sqlite_settings)

    # A wrong key: Tautulli's own reason is shown, nothing is saved.
    reason = await _refusal(client, {"url": fake.url, "api_key": "0" * 32})
    assert reason == "Tautulli refused MediaNest's API key: Invalid apikey"
    assert fake.calls["GET /api/v2"] == 1  # it really asked
    assert await client.saved_settings(PLUGIN) == {}

    # Tautulli's API turned off: said in Tautulli's words.
    fake.api_enabled = False
    reason = await _refusal(client, {"url": fake.url, "api_key": fake.apikey})
    assert reason == "Tautulli answered with an error: API not enabled"
    fake.api_enabled = True

    # No key at all, and an address where nothing answers.
    reason = await _refusal(client, {"url": fake.url})
    assert "API key" in reason
    async with FakeTautulli() as gone:
        closed = gone.url
    reason = await _refusal(client, {"url": closed, "api_key": fake.apikey})
    assert reason == "Tautulli is unreachable"
    assert await client.saved_settings(PLUGIN) == {}

    # The right key is tried, then saved (the key masked from then on).
    before = fake.commands["get_tautulli_info"]
    resp = await client.put(SETTINGS_URL, json={"url": fake.url, "api_key": fake.apikey})
    assert resp.status == 200, await resp.text()
    assert fake.commands["get_tautulli_info"] == before + 1
    saved = await client.saved_settings(PLUGIN)
    assert saved["url"].rstrip("/") == fake.url
    assert saved["api_key"] == "••••"

    # Enabled, its health names Tautulli's version and the Plex server it watches.
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    health = await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json()
    [check] = health["checks"]
    assert check["status"] == "ok", check
    assert check["version"] == fake.version
    assert check["message"] == (
        f"Tautulli {fake.version}, watching {fake.pms_name} (Plex {fake.pms_version})."
    )

    # A later wrong key is refused and the working settings stay, with their one client: the
    # connection test's own client is gone, so the admin page lists Tautulli once.
    reason = await _refusal(client, {"url": fake.url, "api_key": "f" * 32})
    assert "Invalid apikey" in reason
    assert (await client.saved_settings(PLUGIN))["url"] == saved["url"]
    assert len(client.app[REGISTRY].context(PLUGIN).service_clients()) == 1


async def test_connection_test_reports_the_version_and_a_missing_plex_link(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    client = await make_client(sqlite_settings)
    ctx = client.app[REGISTRY].context(PLUGIN)
    proposed = TautulliSettings.model_validate({"url": fake.url, "api_key": fake.apikey})

    result = await tautulli_plugin.check_connection(proposed, ctx)
    assert (result.status, result.version) == ("ok", fake.version)
    assert fake.pms_name in result.message

    # Tautulli cut off from Plex: the key and address are right, so they may be saved, but the
    # running integration's health says what is wrong.
    fake.plex_connected = False
    result = await tautulli_plugin.check_connection(proposed, ctx)
    assert result.status == "ok"
    assert result.message == f"Tautulli {fake.version} answers, but cannot reach its Plex server."
    await configure(client, fake)
    [check] = (await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json())["checks"]
    assert check["status"] == "degraded"
    assert "cannot reach its Plex server" in check["message"]
    assert "cannot reach its Plex server" in await fragment(client, "activity")

    # Tautulli gone: its health says so.
    await fake.stop()
    [check] = (await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json())["checks"]
    assert (check["status"], check["message"]) == ("down", "Tautulli is unreachable")


# --- the widgets ------------------------------------------------------------------------------


async def test_widgets_show_activity_statistics_and_history(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    # Films watched more than 30 days ago do not count; Interstellar is this month's favourite.
    for _ in range(30):
        fake.add_history("alice", "The Matrix", days_ago=45)
    for day in range(12):
        fake.add_history("bob", "Interstellar", days_ago=day + 0.5)
    fake.add_history("alice", "Felina")  # just now
    client = await portal(make_client, sqlite_settings, fake)

    raw = await raw_fragment(client, "activity")
    assert "2 streams · 1 transcoding · 14.2 Mbps" in text(raw)
    alice, bob = items(raw, "streams")
    assert alice == (
        "Alice — Breaking Bad S05E14 · Ozymandias 38 % 38 %"
        " Direct play · playing · Living Room TV · 10.0 Mbps"
    )
    assert bob == (
        "Bob — Dune: Part Two (2024) 71 % 71 %"
        " Transcode (4 Mbps 720p) · playing · Chrome · 4.2 Mbps"
    )
    assert 'value="38"' in raw and 'value="71"' in raw

    # The month's plays, counted from the fake's own history.
    month = time.time() - 30 * 86400
    plays = [p for p in fake.history if p.started >= month]
    films: dict[str, int] = defaultdict(int)
    series: dict[str, int] = defaultdict(int)
    people: dict[str, int] = defaultdict(int)
    for play in plays:
        if play.media.media_type == "movie":
            films[f"{play.media.title} ({play.media.year})"] += 1
        else:
            series[play.media.grandparent_title] += 1
        people[play.user.friendly_name] += 1

    raw = await raw_fragment(client, "stats")
    assert "The last 30 days, by plays." in text(raw)
    movies = ranking(items(raw, "top-movies"))
    assert movies[0] == ("Interstellar (2014)", films["Interstellar (2014)"])
    # The Matrix's many plays of 45 days ago do not count.
    assert all(films[title] == count for title, count in movies), movies
    assert 1 <= len(movies) <= 5
    assert dict(ranking(items(raw, "top-shows"))) == series
    users = ranking(items(raw, "top-users"))
    assert dict(users) == people

    raw = await raw_fragment(client, "history")
    recent = items(raw, "recently-watched")
    assert len(recent) == 10
    assert recent[0] == "Breaking Bad S05E16 · Felina Alice · just now · watched"
    assert recent[1].startswith("Interstellar (2014) Bob · ")

    # The dashboard shows all three, and so does its JSON.
    page = text(await (await client.get("/")).text())
    for title in ("Current activity", "Watch statistics", "Recently watched"):
        assert title in page
    data = await (await client.get("/api/v1/dashboard")).json()
    mine = {w["name"]: w for w in data["widgets"] if w["plugin"] == PLUGIN}
    assert set(mine) == set(WIDGETS)
    assert mine["activity"]["data"]["stream_count"] == 2
    assert {s["friendly_name"] for s in mine["activity"]["data"]["sessions"]} == {"Alice", "Bob"}


async def test_a_plain_user_sees_counts_and_titles_but_not_who_watches(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    admin = await portal(make_client, sqlite_settings, fake)
    user = await plain_user(admin)
    try:
        seen = await fragment(user, "activity")
        assert "2 streams · 1 transcoding · 14.2 Mbps" in seen
        for secret in (*PEOPLE, "Ozymandias", "Dune", "Living Room TV", "Chrome"):
            assert secret not in seen, secret

        stats = await fragment(user, "stats")
        assert "Most watched films" in stats and "Most watched series" in stats
        assert "Breaking Bad" in stats
        assert "Most active users" not in stats
        recent = items(await raw_fragment(user, "history"), "recently-watched")
        assert len(recent) == 10
        for name in PEOPLE:
            assert name not in stats, name
            assert not any(name in row for row in recent), name

        # Neither the dashboard page nor its JSON tells the names.
        page = await (await user.get("/")).text()
        dashboard = await (await user.get("/api/v1/dashboard")).text()
        for name in PEOPLE:
            assert name not in page, name
            assert name not in dashboard, name

        # The admin, on the same MediaNest at the same moment, sees who watches what.
        assert "Alice — Breaking Bad S05E14 · Ozymandias" in await fragment(admin, "activity")
        assert "Most active users" in await fragment(admin, "stats")
    finally:
        await user.session.close()


async def test_widgets_of_an_empty_tautulli(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    async with FakeTautulli(seed=False) as empty:
        client = await portal(make_client, sqlite_settings, empty)
        activity = await fragment(client, "activity")
        assert "0 streams · 0 transcoding · 0 kbps" in activity
        assert "Nothing is playing." in activity
        assert "Nothing was watched in the last 30 days." in await fragment(client, "stats")
        assert "Nothing has been watched yet." in await fragment(client, "history")
        assert "widget-unavailable" not in await (await client.get("/")).text()


async def test_widgets_before_tautulli_is_set_up(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    for widget in WIDGETS:
        assert "Tautulli is not set up yet" in await fragment(client, widget)
    [check] = (await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json())["checks"]
    assert check["status"] == "unconfigured"


async def test_widgets_when_tautulli_is_down_from_the_start(
    tmp_path: Path, make_client: MakeClient, fake: FakeTautulli
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    first = await make_client(settings)
    await configure(first, fake)
    await first.close()

    # MediaNest restarts while Tautulli is down: there is no earlier data to fall back on.
    await fake.stop()
    client = await make_client(settings)
    resp = await client.get("/")
    assert resp.status == 200
    page = text(await resp.text())
    unavailable = r"Tautulli is unreachable( since \d\d:\d\d)?; no earlier data to show\."
    assert len(re.findall(unavailable, page)) == 3, page
    for widget in WIDGETS:
        assert "widget-unavailable" in await raw_fragment(client, widget)
    [check] = (await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json())["checks"]
    assert check["status"] == "down"


@pytest.mark.usefixtures("fast_polls")
async def test_widgets_keep_their_last_data_and_say_why_when_tautulli_fails(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    client = await portal(make_client, sqlite_settings, fake)
    assert "Ozymandias" in await fragment(client, "activity")

    async def shows(widget: str, *words: str) -> bool:
        shown = await fragment(client, widget)
        return all(w in shown for w in words)

    # Tautulli's key was regenerated: its reason, and the last data with its age.
    real = fake.apikey
    fake.apikey = "a" * 32
    refused = "Tautulli refused MediaNest's API key: Invalid apikey; showing data from"
    await wait_for(lambda: shows("activity", refused))
    assert "Ozymandias" in await fragment(client, "activity")
    # Each fault is mended before the next, and seen mended: five failures in a row would
    # open the breaker, and the tiles would then say so for its 30 s.
    fake.apikey = real
    await wait_for(lambda: _fresh(client, "activity"))

    # The API turned off, then an answer that is not Tautulli's: still no 500.
    fake.api_enabled = False
    await wait_for(lambda: shows("history", "Tautulli answered with an error: API not enabled"))
    fake.api_enabled = True
    await wait_for(lambda: _fresh(client, "history"))

    # Tautulli stops: the data stays, marked with its age.
    await fake.stop()
    await wait_for(lambda: shows("activity", "Tautulli is unreachable", "showing data from"))
    resp = await client.get("/")
    assert resp.status == 200
    assert "Ozymandias" in await resp.text()


@pytest.mark.usefixtures("fast_polls")
async def test_an_answer_that_is_not_tautullis_keeps_the_last_data(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    client = await portal(make_client, sqlite_settings, fake)
    assert "Most watched films" in await fragment(client, "stats")
    fake.faults.body = "html"

    async def unusable() -> bool:
        return "Tautulli sent an answer MediaNest could not use" in await fragment(client, "stats")

    await wait_for(unusable)
    assert "Most watched films" in await fragment(client, "stats")


async def _fresh(client: TestClient, widget: str) -> bool:
    return "widget-notice" not in await raw_fragment(client, widget)


# --- pollers and live updates -----------------------------------------------------------------


@pytest.mark.usefixtures("fast_polls")
async def test_one_upstream_call_per_interval_however_many_viewers(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    client = await portal(make_client, sqlite_settings, fake)
    before = Counter(fake.commands)
    started = time.monotonic()
    served = await reload_widgets([client], PLUGIN, WIDGETS, 1.5)
    elapsed = time.monotonic() - started
    assert served >= 150
    most = int(elapsed / FAST) + 2
    for cmd in ("get_activity", "get_home_stats", "get_history"):
        calls = fake.commands[cmd] - before[cmd]
        # Pollers keep the data fresh (about one call per interval), viewers add nothing.
        assert 2 <= calls <= most, (cmd, calls, most)


@pytest.mark.redis
@pytest.mark.usefixtures("fast_polls")
async def test_one_upstream_call_per_interval_across_processes(
    tmp_path: Path, redis_url: str, make_client: MakeClient, fake: FakeTautulli
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", redis_url=redis_url)
    a = await make_client(settings)
    b = await make_client(settings)
    await configure(a, fake)
    # The other process hears of the change and starts its own pollers.
    await wait_for(lambda: _running(b))
    before = Counter(fake.commands)
    started = time.monotonic()
    await reload_widgets([a, b], PLUGIN, WIDGETS, 1.5)
    elapsed = time.monotonic() - started
    most = int(elapsed / FAST) + 2
    for cmd in ("get_activity", "get_home_stats", "get_history"):
        calls = fake.commands[cmd] - before[cmd]
        assert 2 <= calls <= most, (cmd, calls, most)

    # What Redis holds for the widgets carries no key.
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter("*")]
        assert any(b"upstream:" in k and b"cmd=get_activity" in k for k in keys), keys
        for key in keys:
            assert fake.apikey.encode() not in key
            if await redis.type(key) == b"string":
                assert fake.apikey.encode() not in (await redis.get(key) or b"")
    finally:
        await redis.aclose()


async def _running(client: TestClient) -> bool:
    return client.app[REGISTRY].running_pollers(PLUGIN) == 3


@pytest.mark.usefixtures("fast_polls")
async def test_turning_the_plugin_off_stops_its_pollers(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    client = await portal(make_client, sqlite_settings, fake)
    assert await _running(client)
    await wait_for(lambda: _more_than(fake, "get_activity", 2))

    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/disable")).status == 200
    assert client.app[REGISTRY].running_pollers(PLUGIN) == 0
    calls = sum(fake.commands.values())
    await asyncio.sleep(FAST * 4)
    assert sum(fake.commands.values()) == calls
    assert (await client.get(f"/widgets/{PLUGIN}/activity")).status == 404

    # On again: polling resumes.
    stopped_at = fake.commands["get_activity"]
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    await wait_for(lambda: _more_than(fake, "get_activity", stopped_at + 1))


async def _more_than(fake: FakeTautulli, cmd: str, count: int) -> bool:
    return fake.commands[cmd] > count


@pytest.mark.usefixtures("fast_polls")
async def test_a_stream_started_at_tautulli_reaches_open_dashboards(
    sqlite_settings: Settings, make_client: MakeClient, fake: FakeTautulli
) -> None:
    admin = await portal(make_client, sqlite_settings, fake)
    user = await plain_user(admin)
    topics = [pollers.ACTIVITY_TOPIC, pollers.HISTORY_TOPIC, pollers.STATS_TOPIC]
    try:
        async with admin.ws_connect("/ws") as ws, user.ws_connect("/ws") as theirs:
            for socket in (ws, theirs):
                await socket.send_json({"action": "subscribe", "topics": topics})
                assert orjson.loads((await socket.receive(timeout=2)).data) == {
                    "type": "subscribed",
                    "topics": topics,
                }

            mine, theirs_events = Events(ws), Events(theirs)
            try:
                stream = fake.start_stream("mediaowner", "Inception", progress_percent=12)
                event = await mine.wait(pollers.ACTIVITY_TOPIC, streams=3)
                assert event["event"] == "updated"
                assert event["data"] == {
                    "ok": True,
                    "streams": 3,
                    "transcodes": 1,
                    "bandwidth_kbps": 24200,
                }
                shown = await fragment(admin, "activity")
                assert "3 streams" in shown
                assert "Media Owner — Inception (2010)" in shown
                # Everyone hears of it, without names; their widget shows the new count.
                event = await theirs_events.wait(pollers.ACTIVITY_TOPIC, streams=3)
                assert set(event["data"]) == {"ok", "streams", "transcodes", "bandwidth_kbps"}
                assert "3 streams" in await fragment(user, "activity")

                # The stream ends: it leaves the activity and lands in recently watched.
                since = mine.mark()
                fake.update_stream(stream.session_key, progress_percent=90)
                fake.stop_stream(stream.session_key)
                await mine.wait(pollers.ACTIVITY_TOPIC, since, streams=2)
                await mine.wait(pollers.HISTORY_TOPIC, since, ok=True)
                recent = items(await raw_fragment(admin, "history"), "recently-watched")
                assert recent[0] == "Inception (2010) Media Owner · just now · watched"
                assert "Inception" not in await fragment(admin, "activity")
            finally:
                await mine.close()
                await theirs_events.close()
    finally:
        await user.session.close()


# --- the contract, and the key ---------------------------------------------------------------


class RecordingTautulli(FakeTautulli):
    """The fake Tautulli, noting each command it was sent with its parameters."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def api_v2(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.sent.append((params.pop("cmd", ""), params))
        return await super().api_v2(request)


def _contract() -> str:
    folder = os.environ.get("MEDIANEST_TEST_CONTRACTS_DIR")
    require(folder, "MEDIANEST_TEST_CONTRACTS_DIR is not set (the folder of the upstream specs)")
    path = Path(str(folder)) / "tautulli-api.md"
    require(path.is_file(), f"{path} is missing")
    return path.read_text()


def _section(contract: str, cmd: str) -> str:
    """The part of the contract that describes ``cmd``: from its heading (or else its first
    mention) to the next heading."""
    heading = contract.find(f"### `{cmd}`")
    start = heading if heading != -1 else contract.index(f"`{cmd}`")
    end = contract.find("\n### ", start)
    return contract[start : end if end != -1 else None]


@pytest.mark.usefixtures("fast_polls")
async def test_the_plugin_sends_only_what_tautullis_contract_describes(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    contract = _contract()
    async with RecordingTautulli() as fake:
        client = await portal(make_client, sqlite_settings, fake)
        for widget in WIDGETS:
            await fragment(client, widget)
        assert (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).status == 200
        fake.plex_connected = False
        assert (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).status == 200

    # One endpoint, read with GET only; every command and parameter is in the contract.
    assert set(fake.calls) == {"GET /api/v2"}
    commands = {cmd for cmd, _ in fake.sent}
    assert commands == {
        "get_tautulli_info",
        "server_status",
        "get_server_info",
        "get_activity",
        "get_home_stats",
        "get_history",
    }
    for cmd, params in fake.sent:
        assert params.pop("apikey") == fake.apikey
        section = _section(contract, cmd)
        for name in params:
            assert f"`{name}`" in section, (cmd, name)
    stats = next(p for cmd, p in fake.sent if cmd == "get_home_stats")
    assert stats["time_range"] == "30"


@pytest.mark.usefixtures("fast_polls")
async def test_the_api_key_never_shows_in_logs_or_pages(
    sqlite_settings: Settings,
    make_client: MakeClient,
    fake: FakeTautulli,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "9" * 32
    client = await make_client(sqlite_settings)
    assert (await client.put(SETTINGS_URL, json={"url": fake.url, "api_key": wrong})).status == 422
    await configure(client, fake)
    await wait_for(lambda: _polled(fake, "get_activity", "get_home_stats", "get_history"))

    pages = ["/", "/admin/plugins", "/api/v1/plugins", f"/api/v1/plugins/{PLUGIN}"]
    pages += ["/api/v1/dashboard", f"/api/v1/plugins/{PLUGIN}/health"]
    pages += [f"/widgets/{PLUGIN}/{w}" for w in WIDGETS]

    async def everything_shown() -> str:
        shown = []
        for path in pages:
            resp = await client.get(path)
            assert resp.status == 200, path
            shown.append(await resp.text())
        return "\n".join(shown)

    async def activity_says(words: str) -> bool:
        return words in await fragment(client, "activity")

    shown = [await everything_shown()]
    assert "Most watched films" in shown[0]
    # The error paths too: the key refused, then Tautulli gone.
    real = fake.apikey
    fake.apikey = "b" * 32
    await wait_for(lambda: activity_says("Invalid apikey"))
    shown.append(await everything_shown())
    fake.apikey = real
    await fake.stop()
    await wait_for(lambda: activity_says("Tautulli is unreachable"))
    shown.append(await everything_shown())

    # MediaNest's log, that is: without the fake Tautulli's own access log of what it served.
    ours = "\n".join(
        r.getMessage() for r in caplog.records if '"GET /api/v2?' not in r.getMessage()
    )
    for secret in (real, wrong):
        for page in shown:
            assert secret not in page
        assert secret not in ours
    # The requests were logged, with the key hidden; the failures too.
    assert "apikey=hidden&cmd=get_activity" in ours
    assert "tautulli.activity: Tautulli is unreachable" in ours


# --- in a real browser ------------------------------------------------------------------------


class InThread:
    """MediaNest and the fake Tautulli served from an event loop on a thread of its own, so
    that a synchronous browser test can drive both."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def live_dashboard(tmp_path: Path, fast_polls: None) -> Iterator[tuple[str, FakeTautulli]]:
    """A served MediaNest (fast polls) with Tautulli on: its address, and the fake."""
    side = InThread()
    fake = FakeTautulli()
    runner: web.AppRunner | None = None

    async def start() -> web.AppRunner:
        await fake.start()
        app = await create_app(load_settings(data_dir=tmp_path / "data"))
        served = web.AppRunner(app, handle_signals=False)
        await served.setup()
        await web.TCPSite(served, "127.0.0.1", 0).start()
        await add_user(app, *ADMIN, role="admin")
        return served

    try:
        runner = side.run(start())
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        api = Api(url)
        body = json.dumps({"url": fake.url, "api_key": fake.apikey}).encode()
        api._send(
            urllib.request.Request(
                url + SETTINGS_URL,
                data=body,
                headers={"Content-Type": "application/json"},
                method="PUT",
            )
        )
        api.post(f"/api/v1/plugins/{PLUGIN}/enable")
        yield url, fake
    finally:
        if runner is not None:
            side.run(runner.cleanup())
        side.run(fake.stop())
        side.close()


@pytest.mark.browser
def test_the_dashboard_follows_tautulli_live_in_a_browser(
    live_dashboard: tuple[str, FakeTautulli], chromium: str, tmp_path: Path
) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require(False, "Playwright is not installed (pip install playwright)")
        raise
    url, fake = live_dashboard
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page(base_url=url)
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None,
            )
            page.goto("/")
            page.get_by_label("Username").fill(ADMIN[0])
            page.get_by_label("Password").fill(ADMIN[1])
            page.get_by_role("button", name="Sign in").click()
            activity = page.locator(f"#widget-{PLUGIN}-activity")
            history = page.locator(f"#widget-{PLUGIN}-history")
            expect(activity).to_contain_text("2 streams")
            expect(page.locator(f"#widget-{PLUGIN}-stats")).to_contain_text("Most watched films")
            expect(page.locator("html")).to_have_attribute(
                "data-subscribed", re.compile(r"tautulli\.activity")
            )

            # Someone starts a film: the open dashboard shows it without a reload.
            stream = fake.start_stream("mediaowner", "Inception", progress_percent=40)
            expect(activity).to_contain_text("3 streams")
            expect(activity).to_contain_text("Media Owner — Inception (2010)")
            # They finish it: it leaves the activity and tops recently watched.
            fake.update_stream(stream.session_key, progress_percent=95)
            fake.stop_stream(stream.session_key)
            expect(activity).to_contain_text("2 streams")
            expect(history.locator("li").first).to_contain_text("Inception (2010)")
            page.screenshot(path=tmp_path / "tautulli-dashboard.png", full_page=True)
        finally:
            browser.close()
    assert problems == []
