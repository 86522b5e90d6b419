"""The Plex integration against the fake Plex Media Server (and fake plex.tv), over real HTTP.

Settings are saved only after a real connection test, with the token from the settings or from
the owner's own sign-in with Plex; the four widgets (server, now playing, recently added,
libraries) render with data, with an empty server and with Plex down; people who are not admins
see how many streams there are, never who watches what; pollers keep the data fresh with one
call per interval, stop when the plugin is turned off and push changes to open dashboards.
Searches find what is in Plex with its ids; the availability index answers which films and
seasons are there, from a full scan and then from the recently-added list; another plugin has a
library scanned through ``refresh_library``. The plugin calls only what the fake serves and the
published spec describes, and its token shows up in no page and no log line.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import WSMsgType, web
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
from medianest_plugins.plex import pollers
from pydantic import BaseModel

from medianest import ApiModel, Availability, PluginContext, Route, SeasonAvailability, hookimpl
from medianest.core import hookspecs
from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings, load_settings
from medianest.testing import FakePlexMediaServer, FakePlexTV, PlexAccount, subscribe
from medianest.testing.pms import OTHER_VIDEOS

PLUGIN = "plex"
SETTINGS_URL = f"/api/v1/plugins/{PLUGIN}/settings"
WIDGETS = ("status", "now-playing", "recent", "libraries")
TOKEN = "owner-token-0123456789abcdef"
SERVER = "Home Server"
# A poll interval short enough for tests to watch several of them go by.
FAST = 0.25
FRIEND = ("friend", "a friend's long password")
# The names a stream shows to admins.
PEOPLE = ("alice", "bob")


class RecordingPMS(FakePlexMediaServer):
    """The fake Plex Media Server, noting each request with its parameters and headers."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sent: list[tuple[str, str, dict[str, str], dict[str, str]]] = []

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self._record)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.sent.append((request.method, request.path, dict(request.query), dict(request.headers)))
        response: web.StreamResponse = await handler(request)
        return response

    def full_scans(self) -> int:
        """How many times the films of library 1 were read with their ids (a full scan)."""
        return sum(
            1
            for _, path, query, _ in self.sent
            if path == "/library/sections/1/all" and query.get("includeGuids") == "1"
        )


@pytest.fixture
async def pms() -> AsyncIterator[RecordingPMS]:
    server = RecordingPMS(name=SERVER, tokens={TOKEN})
    async with server:
        yield server


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll every FAST seconds instead of every 10 s to 10 min (below what the settings allow;
    the full-scan poller's look is set before start-up, when it is registered). A full scan
    still happens once in hours: what changes later is found by the cheap recently-added scan."""
    for coordinator in pollers.WIDGETS:
        monkeypatch.setattr(coordinator, "interval", FAST)
    for name in ("SECTIONS_TTL", "SCAN_CHECK_INTERVAL"):
        monkeypatch.setattr(pollers, name, FAST)


async def configure(
    client: Client, pms: FakePlexMediaServer, *, enable: bool = True, **extra: Any
) -> None:
    await client.configure(PLUGIN, {"url": pms.url, "token": TOKEN} | extra, enable=enable)


async def portal(
    make_client: MakeClient, settings: Settings, pms: FakePlexMediaServer, **extra: Any
) -> Client:
    """A MediaNest with the Plex integration on, pointed at ``pms``, its first scan done."""
    client = await make_client(settings)
    await configure(client, pms, **extra)
    await wait_for(lambda: scanned(client))
    await wait_for(lambda: _polled(pms))
    return client


async def _polled(pms: FakePlexMediaServer) -> bool:
    paths = ("GET /", "GET /status/sessions", "GET /library/recentlyAdded")
    return all(pms.calls[p] >= 1 for p in paths)


async def availability(client: TestClient, media_type: str, **ids: str) -> Availability | None:
    """What the core hears when it asks ``check_availability``."""
    answers = dict(
        await client.app[REGISTRY].call_each(
            hookspecs.check_availability, ids=ids, media_type=media_type
        )
    )
    answer = answers.get(PLUGIN)
    assert answer is None or isinstance(answer, Availability)
    return answer


async def scanned(client: TestClient) -> bool:
    return await availability(client, "movie", tmdb="603") is not None


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


def items(page: str, css_class: str) -> list[str]:
    """The items of the list with ``css_class`` in a widget's HTML, as text."""
    found = re.search(rf'<(ol|ul) class="[^"]*\b{css_class}\b[^"]*">(.*?)</\1>', page, re.S)
    assert found, f"no list {css_class} in {page}"
    return [text(item) for item in re.findall(r"<li[^>]*>(.*?)</li>", found[2], re.S)]


async def plain_user(client: Client) -> Client:
    """Another browser on the same MediaNest, signed in as a user who is not an admin."""
    await add_user(client.app, *FRIEND)
    other = Client(client.server)
    await other.start_server()  # the server runs already: this only binds the client
    await other.sign_in(*FRIEND)
    return other


async def receive_event(
    ws: Any, topic: str, within: float = 5.0, **expected: Any
) -> dict[str, Any]:
    """The next event on ``topic`` whose data has the ``expected`` values."""
    deadline = time.monotonic() + within
    while True:
        msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
        assert msg.type is WSMsgType.TEXT, msg
        message = orjson.loads(msg.data)
        data = message.get("data", {})
        if message.get("topic") == topic and all(data.get(k) == v for k, v in expected.items()):
            return dict(message)


async def health(client: TestClient) -> dict[str, Any]:
    [check] = (await (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).json())["checks"]
    return dict(check)


# --- settings and the connection test --------------------------------------------------------


async def _refusal(client: Client, body: dict[str, Any]) -> str:
    refused = await client.refusal(PLUGIN, body)
    assert refused.status == 422
    assert "could not connect with these settings; nothing was saved" in refused.message
    return str(refused.details[0]["message"])


async def test_settings_are_saved_only_after_a_real_connection_test(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    client = await make_client(sqlite_settings)

    # A token the server refuses: said plainly, nothing saved.
    reason = await _refusal(client, {"url": pms.url, "token": "not-the-token"})
    assert reason == "Plex refused the token: check it (it must be the server owner's)."
    assert pms.calls["GET /identity"] == 1 and pms.calls["GET /"] == 1  # it really asked
    assert await client.saved_settings(PLUGIN) == {}

    # A library the server does not have, and an address where nothing answers.
    reason = await _refusal(client, {"url": pms.url, "token": TOKEN, "libraries": "Films"})
    assert reason == (
        f"{SERVER} has no film, series or music library named Films"
        " (its libraries: Movies, TV Shows, Music)."
    )
    async with FakePlexMediaServer(seed=False) as gone:
        closed = gone.url
    assert await _refusal(client, {"url": closed, "token": TOKEN}) == "Plex is unreachable"
    # Something that is not a Plex server.
    pms.faults.body = "html"
    reason = await _refusal(client, {"url": pms.url, "token": TOKEN})
    assert reason == "Plex sent an answer MediaNest could not use"
    pms.faults.clear()
    assert await client.saved_settings(PLUGIN) == {}

    # The right token, with libraries named as the admin form sends them: tried, then saved.
    before = pms.calls["GET /library/sections"]
    resp = await client.put(
        SETTINGS_URL, json={"url": pms.url, "token": TOKEN, "libraries": "movies, 2"}
    )
    assert resp.status == 200, await resp.text()
    assert pms.calls["GET /library/sections"] == before + 1
    saved = await client.saved_settings(PLUGIN)
    assert saved["url"].rstrip("/") == pms.url
    assert saved["token"] == "••••"
    assert saved["libraries"] == ["movies", "2"]
    # The admin form shows them as typed, not as a Python list.
    page = await (await client.get("/admin/plugins")).text()
    assert 'name="libraries" value="movies, 2"' in page

    # Enabled, its health names the server, its version and the libraries watched.
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    check = await health(client)
    assert check["status"] == "ok", check
    assert check["version"] == pms.version
    assert check["message"] == (
        f"{SERVER}: Plex Media Server {pms.version}, watching Movies, TV Shows."
    )

    # A later wrong token is refused and the working settings stay, with their one client.
    reason = await _refusal(client, {"url": pms.url, "token": "stale"})
    assert "refused the token" in reason
    assert (await client.saved_settings(PLUGIN))["libraries"] == ["movies", "2"]
    assert len(client.app[REGISTRY].context(PLUGIN).service_clients()) == 1

    # Plex gone: its health says so.
    await pms.stop()
    check = await health(client)
    assert (check["status"], check["message"]) == ("down", "Plex is unreachable")


@dataclass
class PlexWorld:
    tv: FakePlexTV
    owner: PlexAccount
    friend: PlexAccount


@pytest.fixture
async def plex_tv(pms: FakePlexMediaServer) -> AsyncIterator[PlexWorld]:
    """plex.tv, where ``pms`` belongs to the owner (whose token it takes) and is shared with a
    friend (whose token it does not)."""
    tv = FakePlexTV()
    owner, friend = tv.add_account("olivia"), tv.add_account("sam")
    pms.tokens = {owner.token}
    tv.add_server(SERVER, owner, shared_with=[friend], machine_id=pms.machine_id)
    async with tv:
        yield PlexWorld(tv, owner, friend)


async def sign_in_with_plex(client: Client, world: PlexWorld, account: PlexAccount) -> None:
    """A new browser presses "Sign in with Plex" and ``account`` approves it on plex.tv."""
    async with aiohttp.ClientSession(
        base_url=f"http://{client.host}:{client.port}",
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    ) as browser:
        resp = await browser.get("/auth/plex/start", allow_redirects=False)
        assert resp.status == 303, await resp.text()
        code = parse_qs(urlsplit(resp.headers["Location"]).fragment[1:])["code"][0]
        world.tv.approve(code, account)
        resp = await browser.get("/auth/plex/callback", allow_redirects=False)
        assert resp.status == 303, await resp.text()


@pytest.mark.usefixtures("fast_polls")
async def test_without_a_token_the_owners_own_sign_in_is_used(
    sqlite_settings: Settings,
    make_client: MakeClient,
    pms: FakePlexMediaServer,
    plex_tv: PlexWorld,
) -> None:
    client = await make_client(sqlite_settings)
    # No token yet: the address is checked and saved, so that people can sign in with Plex.
    resp = await client.put(
        SETTINGS_URL,
        json={"url": pms.url, "plex_tv_url": plex_tv.tv.url, "plex_app_url": plex_tv.tv.url},
    )
    assert resp.status == 200, await resp.text()
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    check = await health(client)
    assert check["status"] == "unconfigured"
    assert check["message"] == (
        f"Plex Media Server {pms.version} answers, but MediaNest has no token for it: enter the"
        " owner's token, or sign in with Plex as the server's owner."
    )
    no_token = "MediaNest has no Plex token yet"
    for widget in WIDGETS:
        assert no_token in await fragment(client, widget)
    assert await availability(client, "movie", tmdb="603") is None

    # A friend's sign-in gives MediaNest no token for the server...
    await sign_in_with_plex(client, plex_tv, plex_tv.friend)
    assert no_token in await fragment(client, "status")
    assert (await health(client))["status"] == "unconfigured"
    # ...the owner's does, at once: the widgets, the health and the scan use it.
    await sign_in_with_plex(client, plex_tv, plex_tv.owner)
    assert SERVER in await fragment(client, "status")
    check = await health(client)
    assert check["status"] == "ok", check
    await wait_for(lambda: scanned(client))
    assert pms.calls["GET /library/sections"] >= 1

    # The owner's token is refused later (revoked at plex.tv): the health says what to do.
    pms.tokens = set()
    check = await health(client)
    assert check["status"] == "degraded"
    assert "sign in with Plex again as the server's owner" in check["message"]


# --- the widgets ------------------------------------------------------------------------------


async def test_widgets_show_the_server_what_plays_what_was_added_and_the_libraries(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    pms.start_session(pms.find("Pilot"), user="alice", progress=0.3)
    pms.start_session(pms.find("Inception"), user="bob", progress=0.75, transcode=True)
    client = await portal(make_client, sqlite_settings, pms)

    status = await fragment(client, "status")
    assert status == f"Plex {SERVER} online Plex Media Server {pms.version} on Linux 6.1"

    raw = await raw_fragment(client, "now-playing")
    assert "2 streams · 1 transcoding" in text(raw)
    assert items(raw, "streams") == [
        "alice — Breaking Bad · S01E01 · Pilot 30 % 30 % Direct play · playing · Chrome",
        "bob — Inception (2010) 75 % 75 % Transcode · playing · Chrome",
    ]
    assert 'value="30"' in raw and 'value="75"' in raw

    raw = await raw_fragment(client, "recent")
    recent = items(raw, "recently-added")
    # Newest first: an album, seasons (named by their series), films.
    assert recent[:4] == [
        "Discovery by Daft Punk · 2001",
        "The Office Season 2 · 2005",
        "Breaking Bad Season 2 · 2008",
        "Stranger Things Season 1 · 2016",
    ]
    assert {"Arrival 2016", "The Matrix 1999"} <= set(recent)
    # Posters come through MediaNest, as images; no page names the server or its token.
    posters = re.findall(r'<img class="poster" src="([^"]+)"', raw)
    assert len(posters) == len(recent)
    assert all(re.fullmatch(r"/plex/posters/\d+", p) for p in posters), posters
    resp = await client.get(posters[0])
    assert resp.status == 200
    assert resp.content_type == "image/jpeg"
    assert (await resp.read()).startswith(b"\xff\xd8")
    # Only posters of what MediaNest shows: an episode's is not.
    pilot = pms.find("Pilot").rating_key
    assert (await client.get(f"/plex/posters/{pilot}")).status == 404
    assert (await client.get("/plex/posters/../identity")).status == 404

    raw = await raw_fragment(client, "libraries")
    assert items(raw, "library-counts") == [
        "Movies — 5 films",
        "TV Shows — 3 series, 56 episodes",
        "Music — 1 artist, 1 album, 4 tracks",
    ]

    # The dashboard shows all four, and so does its JSON.
    page = text(await (await client.get("/")).text())
    for title in ("Now playing", "Recently added", "Libraries", SERVER):
        assert title in page
    data = await (await client.get("/api/v1/dashboard")).json()
    mine = {w["name"]: w for w in data["widgets"] if w["plugin"] == PLUGIN}
    assert set(mine) == set(WIDGETS)
    assert mine["now-playing"]["data"]["count"] == 2
    assert {s["user"] for s in mine["now-playing"]["data"]["streams"]} == {"alice", "bob"}
    assert mine["status"]["data"]["version"] == pms.version


async def test_only_the_watched_libraries_are_shown(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    client = await portal(make_client, sqlite_settings, pms, libraries=["Movies"])
    assert items(await raw_fragment(client, "libraries"), "library-counts") == ["Movies — 5 films"]
    recent = items(await raw_fragment(client, "recent"), "recently-added")
    assert recent[0] == "Arrival 2016" and len(recent) == 5
    # Series are not looked at: the index knows no series, and search finds none.
    answer = await availability(client, "tv", tvdb="81189")
    assert answer is not None and answer.available is False
    results = dict(await client.app[REGISTRY].call_each(hookspecs.search_media, query="breaking"))
    assert results[PLUGIN] == []


async def test_a_plain_user_sees_how_many_streams_but_not_who_watches_what(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    pms.start_session(pms.find("Pilot"), user="alice", progress=0.3)
    pms.start_session(pms.find("Cancer Man"), user="bob", progress=0.75, transcode=True)
    admin = await portal(make_client, sqlite_settings, pms)
    user = await plain_user(admin)
    try:
        seen = await fragment(user, "now-playing")
        assert seen == "Now playing 2 streams"
        # Neither the dashboard page nor its JSON tells who, what, how or where.
        page = await (await user.get("/")).text()
        dashboard = await (await user.get("/api/v1/dashboard")).text()
        for secret in (*PEOPLE, "Pilot", "Cancer Man", "Transcode", "Direct play", "Chrome"):
            assert secret not in page, secret
            assert secret not in dashboard, secret
        # The other widgets are the same for everyone.
        assert await fragment(user, "libraries") == await fragment(admin, "libraries")
        # The admin, at the same moment, sees who watches what.
        assert "bob — Breaking Bad · S01E04 · Cancer Man 75 %" in await fragment(
            admin, "now-playing"
        )
    finally:
        await user.session.close()


async def test_widgets_of_an_empty_server(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    empty = FakePlexMediaServer(name=SERVER, tokens={TOKEN}, seed=False)
    async with empty:
        client = await portal(make_client, sqlite_settings, empty)
        assert SERVER in await fragment(client, "status")
        assert "0 streams · 0 transcoding Nothing is playing." in await fragment(
            client, "now-playing"
        )
        assert "Nothing has been added yet." in await fragment(client, "recent")
        assert "This server has no libraries yet." in await fragment(client, "libraries")
        assert "widget-unavailable" not in await (await client.get("/")).text()
        answer = await availability(client, "movie", tmdb="603")
        assert answer is not None
        assert (answer.available, answer.server_name) == (False, SERVER)


async def test_widgets_before_plex_is_set_up(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    for widget in WIDGETS:
        assert "Plex is not set up yet" in await fragment(client, widget)
    assert (await health(client))["status"] == "unconfigured"
    registry = client.app[REGISTRY]
    assert await availability(client, "movie", tmdb="603") is None
    assert dict(await registry.call_each(hookspecs.search_media, query="matrix"))[PLUGIN] == []
    assert PLUGIN not in dict(await registry.call_each(hookspecs.refresh_library, path=None))


async def test_widgets_when_plex_is_down_from_the_start(
    tmp_path: Path, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    first = await make_client(settings)
    await configure(first, pms)
    await first.close()

    # MediaNest restarts while Plex is down: there is no earlier data to fall back on.
    await pms.stop()
    client = await make_client(settings)
    resp = await client.get("/")
    assert resp.status == 200
    page = text(await resp.text())
    unavailable = r"Plex is unreachable( since \d\d:\d\d)?; no earlier data to show\."
    assert len(re.findall(unavailable, page)) == len(WIDGETS), page
    for widget in WIDGETS:
        assert "widget-unavailable" in await raw_fragment(client, widget)
    assert (await health(client))["status"] == "down"
    assert await availability(client, "movie", tmdb="603") is None
    assert (await client.get("/plex/posters/101")).status == 404


async def any_of(shown: Awaitable[str], *reasons: str) -> bool:
    page = await shown
    return any(reason in page for reason in reasons)


@pytest.mark.usefixtures("fast_polls")
async def test_widgets_keep_their_last_data_and_say_why_when_plex_fails(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    pms.start_session(pms.find("Pilot"), user="alice", progress=0.3)
    client = await portal(make_client, sqlite_settings, pms)
    assert "alice — Breaking Bad" in await fragment(client, "now-playing")

    async def shows(widget: str, *words: str) -> bool:
        shown = await fragment(client, widget)
        return all(w in shown for w in words)

    # The token was revoked: the reason, and the last data with its age.
    pms.tokens = set()
    refused = "Plex refused MediaNest's credentials (check the API key or token); showing data"
    await wait_for(lambda: shows("now-playing", refused, "alice — Breaking Bad"))
    await wait_for(lambda: shows("status", refused, "unreachable"))
    pms.tokens = {TOKEN}
    await wait_for(lambda: shows("status", "online"))

    # An answer that is not Plex's: still no 500, the last data stays.
    pms.faults.body = "truncated"
    # Four pollers failing at once open the breaker within a poll or two (every interval is
    # shortened here), and the tile then says the breaker's reason instead.
    await wait_for(
        lambda: any_of(
            fragment(client, "libraries"),
            "Plex sent an answer MediaNest could not use",
            "Plex is unreachable since",
        )
    )
    assert "Movies — 5 films" in await fragment(client, "libraries")
    pms.faults.clear()

    # Plex stops: the data stays, marked with its age; the server is shown unreachable. (The
    # failures above may have opened the breaker already: until its next trial call the tile
    # names the failure that opened it.)
    await pms.stop()
    await wait_for(
        lambda: any_of(
            fragment(client, "recent"),
            "Plex is unreachable",
            "Plex has been failing since",
        )
    )
    assert "showing data from" in await fragment(client, "recent")
    await wait_for(lambda: shows("status", "unreachable"))
    resp = await client.get("/")
    assert resp.status == 200
    assert "The Matrix" in await resp.text()


# --- pollers and live updates -----------------------------------------------------------------

# The reads each interval makes, and how many different ones share a path.
POLLED = {
    "GET /": 1,
    "GET /status/sessions": 1,
    "GET /library/recentlyAdded": 1,
    "GET /library/sections": 1,
    "GET /library/sections/1/all": 1,  # films
    "GET /library/sections/2/all": 2,  # series, episodes
}


@pytest.mark.usefixtures("fast_polls")
async def test_one_upstream_call_per_interval_however_many_viewers(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    client = await portal(make_client, sqlite_settings, pms)
    before = dict(pms.calls)
    started = time.monotonic()
    served = await reload_widgets([client], PLUGIN, WIDGETS, 1.5)
    elapsed = time.monotonic() - started
    # Many more widget loads than poll intervals: a busy machine serves fewer, but enough.
    assert served >= 40
    most = int(elapsed / FAST) + 2
    for path, reads in POLLED.items():
        calls = pms.calls[path] - before.get(path, 0)
        # Pollers keep the data fresh (about one call per interval), viewers add nothing.
        assert 2 * reads <= calls <= most * reads, (path, calls, most)


@pytest.mark.redis
@pytest.mark.usefixtures("fast_polls")
async def test_one_call_per_interval_and_one_full_scan_across_processes(
    tmp_path: Path, redis_url: str, make_client: MakeClient
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", redis_url=redis_url)
    pms = RecordingPMS(name=SERVER, tokens={TOKEN})
    async with pms:
        a = await make_client(settings)
        b = await make_client(settings)
        await configure(a, pms)
        # The other process hears of the change and starts its own pollers.
        await wait_for(lambda: _running(b))
        await wait_for(lambda: scanned(a))
        await wait_for(lambda: scanned(b))
        before = dict(pms.calls)
        started = time.monotonic()
        await reload_widgets([a, b], PLUGIN, WIDGETS, 1.5)
        elapsed = time.monotonic() - started
        most = int(elapsed / FAST) + 2
        for path, reads in POLLED.items():
            calls = pms.calls[path] - before.get(path, 0)
            assert 2 * reads <= calls <= most * reads, (path, calls, most)
        # Both processes run the full-scan poller; the library was read once.
        assert pms.full_scans() == 1

        # What Redis holds for the widgets and the index carries no token.
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url)
        try:
            keys = [k async for k in redis.scan_iter("*")]
            assert any(b"plex:availability:" in k for k in keys), keys
            for key in keys:
                assert TOKEN.encode() not in key
                if await redis.type(key) == b"string":
                    assert TOKEN.encode() not in (await redis.get(key) or b"")
        finally:
            await redis.aclose()


async def _running(client: TestClient) -> bool:
    return client.app[REGISTRY].running_pollers(PLUGIN) == 5


@pytest.mark.usefixtures("fast_polls")
async def test_turning_the_plugin_off_stops_its_pollers(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    client = await portal(make_client, sqlite_settings, pms)
    assert await _running(client)
    await wait_for(lambda: _more_than(pms, "GET /status/sessions", 2))

    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/disable")).status == 200
    assert client.app[REGISTRY].running_pollers(PLUGIN) == 0
    calls = sum(pms.calls.values())
    await asyncio.sleep(FAST * 4)
    assert sum(pms.calls.values()) == calls
    assert (await client.get(f"/widgets/{PLUGIN}/now-playing")).status == 404
    assert (await client.get("/plex/posters/101")).status == 404

    # On again: polling resumes.
    stopped_at = pms.calls["GET /status/sessions"]
    assert (await client.post(f"/api/v1/plugins/{PLUGIN}/enable")).status == 200
    await wait_for(lambda: _more_than(pms, "GET /status/sessions", stopped_at + 1))


async def _more_than(pms: FakePlexMediaServer, path: str, count: int) -> bool:
    return pms.calls[path] > count


@pytest.mark.usefixtures("fast_polls")
async def test_what_happens_at_plex_reaches_open_dashboards(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    admin = await portal(make_client, sqlite_settings, pms)
    user = await plain_user(admin)
    topics = [pollers.SESSIONS_TOPIC, pollers.RECENT_TOPIC, pollers.LIBRARIES_TOPIC]
    try:
        async with admin.ws_connect("/ws") as ws, user.ws_connect("/ws") as theirs:
            await subscribe(ws, topics)
            await subscribe(theirs, topics)

            session = pms.start_session(pms.find("Arrival"), user="alice", progress=0.5)
            event = await receive_event(ws, pollers.SESSIONS_TOPIC, streams=1)
            assert event["event"] == "updated"
            assert event["data"] == {"ok": True, "streams": 1}
            assert "alice — Arrival (2016) 50 %" in await fragment(admin, "now-playing")
            # Everyone hears of it, without names; their widget shows the new count.
            event = await receive_event(theirs, pollers.SESSIONS_TOPIC, streams=1)
            assert event["data"] == {"ok": True, "streams": 1}
            assert await fragment(user, "now-playing") == "Now playing 1 stream"

            pms.stop_session(session)
            await receive_event(ws, pollers.SESSIONS_TOPIC, streams=0)
            assert "Nothing is playing." in await fragment(admin, "now-playing")

            # A film is added: recently added and the counts follow.
            pms.add_movie("Dune: Part Two", 2024, tmdb_id=693134, imdb_id="tt15239678")
            # Both widgets hear of it, in whichever order their pollers run.
            waiting = {pollers.RECENT_TOPIC, pollers.LIBRARIES_TOPIC}
            deadline = time.monotonic() + 10
            while waiting:
                msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
                message = orjson.loads(msg.data)
                if message.get("data", {}).get("ok") is True:
                    waiting.discard(message.get("topic"))
            recent = items(await raw_fragment(admin, "recent"), "recently-added")
            assert recent[0] == "Dune: Part Two 2024"
            assert "Movies — 6 films" in await fragment(user, "libraries")
    finally:
        await user.session.close()


@pytest.mark.browser
@pytest.mark.usefixtures("fast_polls")
async def test_the_widgets_on_an_open_dashboard_update_live_in_a_browser(
    sqlite_settings: Settings, make_client: MakeClient, chromium: str, pms: FakePlexMediaServer
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        require(False, "Playwright is not installed (pip install playwright)")
    client = await portal(make_client, sqlite_settings, pms)
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
            await expect(widget["now-playing"]).to_contain_text("Nothing is playing.")
            await expect(widget["libraries"]).to_contain_text("Movies — 5 films")
            await expect(widget["recent"]).not_to_contain_text("Dune: Part Two")
            await expect(page.locator("html")).to_have_attribute(
                "data-subscribed", re.compile(re.escape(pollers.SESSIONS_TOPIC))
            )

            # What happens at Plex shows on the open page, without a reload.
            await page.evaluate("window.sameDocument = true")
            pms.start_session(pms.find("Arrival"), user="alice", progress=0.5)
            await expect(widget["now-playing"]).to_contain_text("alice — Arrival (2016)")
            await expect(widget["now-playing"]).to_contain_text("1 stream")
            pms.add_movie("Dune: Part Two", 2024, tmdb_id=693134, imdb_id="tt15239678")
            await expect(widget["recent"].locator(".recently-added li").first).to_contain_text(
                "Dune: Part Two"
            )
            await expect(widget["libraries"]).to_contain_text("Movies — 6 films")
            assert await page.evaluate("window.sameDocument === true")
        finally:
            await browser.close()
    assert problems == []


# --- search and availability ------------------------------------------------------------------


async def test_search_finds_what_is_in_plex_with_its_ids(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    client = await portal(make_client, sqlite_settings, pms)
    registry = client.app[REGISTRY]

    [matrix] = dict(await registry.call_each(hookspecs.search_media, query="matrix"))[PLUGIN]
    assert (matrix.source, matrix.media_type, matrix.title, matrix.year) == (
        "plex",
        "movie",
        "The Matrix",
        1999,
    )
    film = pms.find("The Matrix")
    assert matrix.ids == {"tmdb": "603", "imdb": "tt0133093", "plex": film.rating_key}
    assert matrix.overview.startswith("A hacker learns")
    assert matrix.poster_url == f"/plex/posters/{film.rating_key}"
    assert (await client.get(matrix.poster_url)).status == 200

    [series] = dict(await registry.call_each(hookspecs.search_media, query="breaking"))[PLUGIN]
    assert (series.media_type, series.title) == ("tv", "Breaking Bad")
    assert series.ids["tvdb"] == "81189" and series.ids["tmdb"] == "1396"
    # Music is not media MediaNest searches for; nothing found is an empty answer.
    assert dict(await registry.call_each(hookspecs.search_media, query="discovery"))[PLUGIN] == []
    assert dict(await registry.call_each(hookspecs.search_media, query="  "))[PLUGIN] == []


@pytest.mark.usefixtures("fast_polls")
async def test_availability_of_films_and_seasons_from_their_guids(
    sqlite_settings: Settings, make_client: MakeClient, pms: RecordingPMS
) -> None:
    client = await portal(make_client, sqlite_settings, pms)
    server = {"source": "plex", "server_id": pms.machine_id, "server_name": SERVER}

    # A film by its TMDB id, or its IMDb id.
    film = await availability(client, "movie", tmdb="603")
    assert film is not None
    assert {k: getattr(film, k) for k in server} == server
    assert (film.available, film.title, film.year, film.seasons) == (True, "The Matrix", 1999, {})
    assert film.key == pms.find("The Matrix").rating_key
    assert await availability(client, "movie", imdb="tt0133093") == film
    # A series by its TVDB id (or its TMDB id), with the seasons present and their episodes.
    series = await availability(client, "tv", tvdb="81189")
    assert series is not None and series.available
    assert series.seasons == {1: SeasonAvailability(7, 7), 2: SeasonAvailability(13, 13)}
    assert series.seasons == {1: (7, 7), 2: (13, 13)}
    assert await availability(client, "tv", tmdb="1396") == series
    # A film's id asked as a series (and the other way round), and what is not there.
    assert (await availability(client, "tv", tmdb="603")).available is False  # type: ignore[union-attr]
    absent = await availability(client, "movie", tmdb="693134")
    assert absent is not None
    assert (absent.available, absent.server_name, absent.key) == (False, SERVER, None)
    assert await availability(client, "episode", tvdb="81189") is None

    # What arrives later is found by the cheap scan of recently added, not a new full scan.
    assert pms.full_scans() == 1
    show = pms.find("Breaking Bad")
    pms.add_season(show, 3, 10)

    async def season_3() -> bool:
        answer = await availability(client, "tv", tvdb="81189")
        return answer is not None and 3 in answer.seasons

    await wait_for(season_3)
    series = await availability(client, "tv", tvdb="81189")
    assert series is not None
    assert series.seasons == {1: (7, 7), 2: (13, 13), 3: (10, 10)}

    pms.add_movie("Dune: Part Two", 2024, tmdb_id=693134, imdb_id="tt15239678")
    pms.add_show("Severance", 2022, tvdb_id=371980, seasons={1: 9})

    async def arrived() -> bool:
        dune = await availability(client, "movie", imdb="tt15239678")
        severance = await availability(client, "tv", tvdb="371980")
        return bool(dune and dune.available and severance and severance.available)

    await wait_for(arrived)
    severance = await availability(client, "tv", tvdb="371980")
    assert severance is not None
    assert (severance.title, severance.seasons) == ("Severance", {1: (9, 9)})
    assert pms.full_scans() == 1


# --- refreshing a library, at another plugin's request ----------------------------------------


class ImportedIn(ApiModel):
    path: str | None = None


class ImportedOut(BaseModel):
    answers: dict[str, Any]


class Importer:
    """A plugin that puts files in place and then asks the media servers to look."""

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [Route("POST", "/importer/imported", self.imported, body=ImportedIn)]

    async def imported(
        self, request: web.Request, body: ImportedIn, plugin: PluginContext
    ) -> ImportedOut:
        answers = await plugin.call_hook("refresh_library", path=body.path)
        return ImportedOut(answers=dict(answers))


async def test_another_plugin_has_a_library_scanned_through_the_hook(
    sqlite_settings: Settings, make_client: MakeClient, pms: FakePlexMediaServer
) -> None:
    client = await make_client(sqlite_settings, extra_plugins=[("importer", Importer())])
    await configure(client, pms, libraries=["Movies", "TV Shows"])
    assert (await client.post("/api/v1/plugins/importer/enable")).status == 200

    async def imported(path: str | None) -> dict[str, Any]:
        resp = await client.post("/importer/imported", json={"path": path})
        assert resp.status == 200, await resp.text()
        return dict((await resp.json())["answers"])

    # A new season's folder: the library holding it scans just that folder.
    folder = "/data/tv/Breaking Bad (2008)/Season 03"
    assert await imported(folder) == {PLUGIN: ["TV Shows"]}
    assert pms.refreshes == [("2", folder)]
    # A film's file finds the film library.
    assert await imported("/data/movies/Dune (2021)/Dune (2021).mkv") == {PLUGIN: ["Movies"]}
    assert pms.refreshes[-1] == ("1", "/data/movies/Dune (2021)/Dune (2021).mkv")
    # A folder no library holds ("/data/tvshows" is not inside "/data/tv"): nothing is asked.
    assert await imported("/data/tvshows/Other") == {}
    assert await imported("/elsewhere") == {}
    assert len(pms.refreshes) == 2
    # No path: every watched library scans, the unwatched music library does not.
    assert await imported(None) == {PLUGIN: ["Movies", "TV Shows"]}
    assert pms.refreshes[2:] == [("1", None), ("2", None)]


# --- the contract, and the token --------------------------------------------------------------

REQUIRED_HEADERS = (
    "X-Plex-Client-Identifier",
    "X-Plex-Product",
    "X-Plex-Version",
    "X-Plex-Device",
    "X-Plex-Platform",
)
# Real servers take ``path=`` on a library refresh (a partial scan); the primary spec lists only
# ``force`` there. Everything else the plugin sends is in the spec.
NOT_IN_THE_SPEC = {("/library/sections/{}/refresh", "path")}


def _spec() -> dict[str, Any]:
    folder = os.environ.get("MEDIANEST_TEST_CONTRACTS_DIR")
    require(folder, "MEDIANEST_TEST_CONTRACTS_DIR is not set (the folder of the upstream specs)")
    path = Path(str(folder)) / "plex.openapi.yaml"
    require(path.is_file(), f"{path} is missing")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return dict(yaml.load(path.read_text(), Loader=loader))


def _shape(path: str) -> str:
    return re.sub(r"{[^}]+}", "{}", path)


def _spec_operations(spec: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """The server's operations (plex.tv's carry a ``servers`` override), with the names of
    their query parameters."""
    found: dict[tuple[str, str], set[str]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete") or op.get("servers"):
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            names = {p["name"] for p in params if p.get("in") == "query"}
            found[(method.upper(), _shape(path))] = names
    return found


def _template_of(path: str, templates: list[str]) -> str:
    for template in templates:
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return _shape(template)
    raise AssertionError(f"the plugin called {path}, which the spec does not describe")


@pytest.mark.usefixtures("fast_polls")
async def test_the_plugin_calls_only_what_the_fake_serves_and_the_spec_describes(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    spec = _spec()
    operations = _spec_operations(spec)
    pms = RecordingPMS(name=SERVER, tokens={TOKEN})
    async with pms:
        pms.start_session(pms.find("Pilot"), user="alice", progress=0.3, transcode=True)
        client = await make_client(sqlite_settings, extra_plugins=[("importer", Importer())])
        await configure(client, pms)
        assert (await client.post("/api/v1/plugins/importer/enable")).status == 200
        await wait_for(lambda: scanned(client))
        pms.add_season(pms.find("The Office"), 3, 4)
        pms.add_movie("Dune: Part Two", 2024, tmdb_id=693134)
        pms.add_show("Severance", 2022, tvdb_id=371980, seasons={1: 9})
        await wait_for(lambda: _has(client, "movie", tmdb="693134"))
        await wait_for(lambda: _has(client, "tv", tvdb="371980"))
        for widget in WIDGETS:
            await fragment(client, widget)
        assert (await client.get("/plex/posters/101")).status == 200
        assert (await client.get(f"/api/v1/plugins/{PLUGIN}/health")).status == 200
        await client.app[REGISTRY].call_each(hookspecs.search_media, query="the")
        for path in ("/data/tv/The Office (2005)", None):
            resp = await client.post("/importer/imported", json={"path": path})
            assert resp.status == 200

    # Every path it called is one the fake serves (so it answered, not 404) ...
    served = {
        (route.method, route.resource.canonical)
        for route in pms.app().router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    templates = [path for _, path in served]
    assert {m for m, *_ in pms.sent} == {"GET"}
    called = {(m, _template_of(path, templates)) for m, path, _, _ in pms.sent}
    assert called == {
        ("GET", "/identity"),
        ("GET", "/"),
        ("GET", "/library/sections"),
        ("GET", "/library/sections/{}/all"),
        ("GET", "/library/sections/{}/refresh"),
        ("GET", "/library/metadata/{}"),
        ("GET", "/library/metadata/{}/children"),
        ("GET", "/library/recentlyAdded"),
        ("GET", "/hubs/search"),
        ("GET", "/status/sessions"),
        ("GET", "/photo/:/transcode"),
    }
    # ... and the published spec describes, with each query parameter it sent.
    for method, path, query, headers in pms.sent:
        template = _template_of(path, templates)
        assert (method, template) in operations, (method, template)
        for name in query:
            assert name in operations[(method, template)] or (template, name) in NOT_IN_THE_SPEC
        # Every call names this installation and asks for JSON; all but /identity carry the
        # token, in a header.
        assert all(headers.get(h) for h in REQUIRED_HEADERS), headers
        assert headers.get("Accept") == "application/json"
        assert headers.get("X-Plex-Token") == TOKEN
        assert "X-Plex-Token" not in query
    assert ("2", "/data/tv/The Office (2005)") in pms.refreshes


async def _has(client: TestClient, media_type: str, **ids: str) -> bool:
    answer = await availability(client, media_type, **ids)
    return answer is not None and answer.available


@pytest.mark.usefixtures("fast_polls")
async def test_the_token_never_shows_in_pages_or_logs(
    sqlite_settings: Settings,
    make_client: MakeClient,
    pms: FakePlexMediaServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "a-wrong-token-9876543210"
    pms.start_session(pms.find("Pilot"), user="alice", progress=0.3)
    client = await make_client(sqlite_settings)
    resp = await client.put(SETTINGS_URL, json={"url": pms.url, "token": wrong})
    assert resp.status == 422
    client = await portal(make_client, sqlite_settings, pms)

    pages = ["/", "/admin/plugins", "/api/v1/plugins", f"/api/v1/plugins/{PLUGIN}"]
    pages += ["/api/v1/dashboard", f"/api/v1/plugins/{PLUGIN}/health", "/api/openapi.json"]
    pages += [f"/widgets/{PLUGIN}/{w}" for w in WIDGETS]

    async def everything_shown() -> str:
        shown = []
        for path in pages:
            resp = await client.get(path)
            assert resp.status == 200, path
            shown.append(await resp.text())
        return "\n".join(shown)

    async def now_playing_says(words: str) -> bool:
        return words in await fragment(client, "now-playing")

    shown = [await everything_shown()]
    assert "alice" in shown[0] and "/plex/posters/" in shown[0]
    poster = await client.get("/plex/posters/101")
    assert poster.status == 200
    assert TOKEN.encode() not in await poster.read()
    # The error paths too: the token refused, then Plex gone.
    pms.tokens = set()
    await wait_for(lambda: now_playing_says("refused MediaNest's credentials"))
    shown.append(await everything_shown())
    pms.tokens = {TOKEN}
    await pms.stop()
    await wait_for(lambda: now_playing_says("Plex is unreachable"))
    shown.append(await everything_shown())

    for secret in (TOKEN, wrong):
        for page in shown:
            assert secret not in page
        assert secret not in caplog.text
    # The requests were logged (without a token); the failures too.
    assert "/status/sessions" in caplog.text
    assert "plex.sessions: Plex is unreachable" in caplog.text


# --- collections, at another plugin's request ---------------------------------------------------


class CollectIn(ApiModel):
    folder: str
    title: str
    paths: list[str]


class Collector:
    """A plugin that puts a playlist's files in place, has their folder scanned and asks for a
    collection of them."""

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [Route("POST", "/collector/collected", self.collected, body=CollectIn)]

    async def collected(
        self, request: web.Request, body: CollectIn, plugin: PluginContext
    ) -> ImportedOut:
        await plugin.call_hook("refresh_library", path=body.folder)
        answers = await plugin.call_hook("collect_media", title=body.title, paths=body.paths)
        return ImportedOut(answers=dict(answers))


def _newer_spec() -> dict[str, Any]:
    folder = os.environ.get("MEDIANEST_TEST_CONTRACTS_DIR")
    require(folder, "MEDIANEST_TEST_CONTRACTS_DIR is not set (the folder of the upstream specs)")
    path = Path(str(folder)) / "plex-pms-2026.openapi.yaml"
    require(path.is_file(), f"{path} is missing")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = dict(yaml.load(path.read_text(), Loader=loader))
    # Its parameters are references to shared ones: resolve them.
    shared = spec["components"]["parameters"]
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "parameters" in op:
                op["parameters"] = [
                    shared[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
                    for p in op["parameters"]
                ]
    return spec


async def test_another_plugin_has_files_put_in_a_collection_with_calls_the_specs_describe(
    sqlite_settings: Settings, make_client: MakeClient, tmp_path: Path
) -> None:
    primary, newer = _spec_operations(_spec()), _spec_operations(_newer_spec())
    trip = tmp_path / "Trip"
    files = _videos(trip, "01 - Beach.mp4", "02 - Hills.mp4")
    pms = RecordingPMS(name=SERVER, tokens={TOKEN}, scan_delay=0.3)
    pms.add_library(
        "Home Videos", "movie", [str(tmp_path)], agent=OTHER_VIDEOS[0], scanner=OTHER_VIDEOS[1]
    )
    async with pms:
        client = await make_client(sqlite_settings, extra_plugins=[("collector", Collector())])
        await configure(client, pms)
        assert (await client.post("/api/v1/plugins/collector/enable")).status == 200

        async def collected(title: str, paths: list[str]) -> dict[str, Any]:
            body = {"folder": str(trip), "title": title, "paths": paths}
            resp = await client.post("/collector/collected", json=body)
            assert resp.status == 200, await resp.text()
            return dict((await resp.json())["answers"])

        assert await collected("Trip", files) == {PLUGIN: "Trip"}
        collection = pms.collection("Trip")
        assert [i.file for i in collection.items] == files
        assert collection.library.title == "Home Videos"
        # Files no library holds make no collection.
        assert await collected("Elsewhere", ["/elsewhere/a.mp4"]) == {}
        assert len(pms.collections) == 1
        machine = pms.machine_id

    # Each call is in a spec, with the parameters it lists: the collections are only in the
    # newer file; newest-first sorting of a library is its media query's ``sort``.
    assert ("GET", "/library/sections/{}/all") in primary
    all_params = {
        p["name"]
        for p in _newer_spec()["paths"]["/library/sections/{sectionId}/all"]["get"]["parameters"]
    }
    assert "mediaQuery" in all_params
    sent = [(m, _shape_of(path), query) for m, path, query, _ in pms.sent]
    for method, template, query in sent:
        allowed = primary.get((method, template), set()) | newer.get((method, template), set())
        assert (method, template) in primary or (method, template) in newer, (method, template)
        extra = {"sort"} if template == "/library/sections/{}/all" else set()
        for name in query:
            assert name in allowed | extra or (template, name) in NOT_IN_THE_SPEC, (
                method,
                template,
                name,
            )
    made = [q for m, t, q in sent if (m, t) == ("POST", "/library/collections")]
    assert made == [
        {
            "type": "1",
            "title": "Trip",
            "smart": "0",
            "sectionId": collection.library.key,
            "uri": f"server://{machine}/com.plexapp.plugins.library/library/metadata/"
            + ",".join(i.rating_key for i in collection.items),
        }
    ]


def _videos(folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"video")
    return [str(folder / name) for name in names]


def _shape_of(path: str) -> str:
    """The spec path a concrete path of the calls made here stands for."""
    for pattern, template in (
        (r"^/library/sections/[^/]+/(all|refresh|collections)$", r"/library/sections/{}/\1"),
        (r"^/library/collections/[^/]+/items$", "/library/collections/{}/items"),
        (r"^/library/metadata/[^/]+$", "/library/metadata/{}"),
        (r"^/library/metadata/[^/]+/children$", "/library/metadata/{}/children"),
    ):
        if re.match(pattern, path):
            return re.sub(pattern, template, path)
    return path
