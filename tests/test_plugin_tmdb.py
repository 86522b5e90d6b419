"""The TMDB plugin against the fake TMDB over real HTTP: settings tried before they are saved,
search without people, details with the ids Sonarr and Radarr need, the trending widget and the
Discover page in every state of the service, the shared poller and its live updates, TMDB's
rate limit honoured, and only calls that TMDB's published description lists."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from conftest import ADMIN, CHROMIUM_ARGS, add_user, require, wait_for
from medianest_plugins.tmdb import pollers
from openapi_spec_validator import OpenAPIV31SpecValidator

from medianest.core import hookspecs
from medianest.core.keys import REGISTRY
from medianest.core.settings import load_settings
from medianest.testing import FakeTMDB
from medianest.testing.tmdb import Movie

CONTRACTS_ENV = "MEDIANEST_TEST_CONTRACTS_DIR"
TRENDING = "GET /3/trending/all/week"
LISTS = [TRENDING, "GET /3/movie/popular", "GET /3/tv/popular", "GET /3/movie/upcoming"]
POSTERS = "https://image.tmdb.org/t/p/"
# A one-pixel PNG, for posters in the browser.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
STALE = r"TMDB is unreachable( since \d\d:\d\d)?; showing data from \d\d:\d\d\."


@dataclass
class TMDB(FakeTMDB):
    """The fake TMDB, also noting the path and query of every request it is sent."""

    queries: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self._note)
        return app

    @web.middleware
    async def _note(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.queries.append((request.path, dict(request.query)))
        return await handler(request)


@pytest.fixture
async def tmdb() -> AsyncIterator[TMDB]:
    fake = TMDB()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def interval(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the coordinator's interval to a test's pace (below what the settings allow)."""

    def set_to(seconds: float) -> float:
        monkeypatch.setattr(pollers.DISCOVERY, "interval", seconds)
        return seconds

    return set_to


async def _portal(make_client: Any, settings: Any, tmdb: FakeTMDB, *, enable: bool = True) -> Any:
    """A MediaNest with the TMDB plugin set up on ``tmdb`` (and enabled), signed in as admin."""
    client = await make_client(settings)
    body = {"api_key": tmdb.api_key, "api_url": tmdb.url}
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=body)
    assert resp.status == 200, await resp.text()
    if enable:
        await _enable(client)
    return client


async def _enable(client: Any) -> None:
    resp = await client.post("/api/v1/plugins/tmdb/enable")
    assert resp.status == 200, await resp.text()


async def _first_poll(tmdb: FakeTMDB) -> None:
    """Wait until the poller has fetched every list once (it runs when the plugin starts)."""

    async def polled() -> bool:
        return all(tmdb.calls[call] >= 1 for call in LISTS)

    await wait_for(polled)


def _item(page: str, tmdb_id: int) -> str:
    found = re.search(
        rf'<li class="poster-card" data-tmdb-id="{tmdb_id}".*?</li>', page, flags=re.DOTALL
    )
    assert found, f"no card for {tmdb_id}"
    return found.group(0)


# --- settings ----------------------------------------------------------------------------


async def test_settings_are_saved_only_after_tmdb_accepts_the_key(
    sqlite_settings, make_client, tmdb
):
    client = await make_client(sqlite_settings)

    wrong = {"api_key": "0123456789abcdef", "api_url": tmdb.url}
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=wrong)
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert "could not connect" in error["message"]
    assert error["details"][0]["message"] == (
        "TMDB refused MediaNest's credentials (check the API key or token): "
        "Invalid API key: You must be granted a valid key."
    )
    assert tmdb.calls["GET /3/configuration"] == 1
    assert await client.saved_settings("tmdb") == {}

    # A malformed language is refused before TMDB is asked anything.
    bad_language = {"api_key": tmdb.api_key, "api_url": tmdb.url, "language": "english"}
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=bad_language)
    assert resp.status == 422
    assert (await resp.json())["error"]["details"][0]["field"] == "language"
    assert tmdb.calls["GET /3/configuration"] == 1

    good = {"api_key": f" {tmdb.api_key}\n", "api_url": tmdb.url, "language": "fr-FR"}
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=good)
    assert resp.status == 200, await resp.text()
    saved = await client.saved_settings("tmdb")
    assert saved["api_key"] == "••••" and saved["language"] == "fr-FR"
    assert saved["region"] == "US" and saved["api_url"].startswith(tmdb.url)
    assert tmdb.calls["GET /3/configuration"] == 2

    assert (await client.post("/api/v1/plugins/tmdb/enable")).status == 200
    health = await (await client.get("/api/v1/plugins/tmdb/health")).json()
    assert health["checks"] == [
        {
            "name": "TMDB",
            "status": "ok",
            "message": "Connected with an API key (v3).",
            "latency_ms": health["checks"][0]["latency_ms"],
            "version": "TMDB API v3",
        }
    ]

    # TMDB gone: the same settings can no longer be saved, and health says why.
    await tmdb.stop()
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=good)
    assert resp.status == 422
    assert "TMDB is unreachable" in (await resp.json())["error"]["details"][0]["message"]
    health = await (await client.get("/api/v1/plugins/tmdb/health")).json()
    assert health["checks"][0]["status"] == "down"


async def test_a_read_token_is_sent_as_bearer_and_a_v3_key_as_a_query_parameter(
    sqlite_settings, make_client, tmdb
):
    client = await make_client(sqlite_settings)
    body = {"api_key": tmdb.read_token, "api_url": tmdb.url}
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=body)
    assert resp.status == 200, await resp.text()
    assert tmdb.requests[-1]["Authorization"] == f"Bearer {tmdb.read_token}"
    assert "api_key" not in tmdb.queries[-1][1]

    body = {"api_key": tmdb.api_key, "api_url": tmdb.url}
    resp = await client.put("/api/v1/plugins/tmdb/settings", json=body)
    assert resp.status == 200, await resp.text()
    assert "Authorization" not in tmdb.requests[-1]
    assert tmdb.queries[-1] == ("/3/configuration", {"api_key": tmdb.api_key})

    # Once enabled, every call carries the key the same way.
    before = len(tmdb.requests)
    await _enable(client)
    await _first_poll(tmdb)
    assert len(tmdb.queries[before:]) == 5  # the configuration and four lists
    assert all(query.get("api_key") == tmdb.api_key for _, query in tmdb.queries[before:])
    assert not any("Authorization" in headers for headers in tmdb.requests[before:])


# --- search and details --------------------------------------------------------------------


async def test_search_finds_films_and_series_but_never_people(sqlite_settings, make_client, tmdb):
    client = await _portal(make_client, sqlite_settings, tmdb)
    registry = client.app[REGISTRY]

    answers = dict(await registry.call_each(hookspecs.search_media, query="breaking"))
    results = answers["tmdb"]
    assert [(r.media_type, r.title, r.year) for r in results] == [
        ("tv", "Breaking Bad", 2008),
        ("movie", "The Twilight Saga: Breaking Dawn - Part 1", 2011),
    ]
    bad = results[0]
    assert bad.source == "tmdb" and bad.ids == {"tmdb": "1396"}
    assert bad.overview.startswith("Walter White, a New Mexico chemistry teacher")
    assert bad.poster_url == POSTERS + "w342/ztkUQFLlC19CCMYHW9o1zWhJRNq.jpg"

    # TMDB finds Keanu Reeves, a person: MediaNest shows nothing.
    assert dict(await registry.call_each(hookspecs.search_media, query="keanu"))["tmdb"] == []
    assert tmdb.calls["GET /3/search/multi"] == 2

    resp = await client.get("/api/v1/tmdb/search", params={"query": "matrix"})
    assert resp.status == 200
    page = await resp.json()
    assert [(r["tmdb_id"], r["media_type"], r["year"]) for r in page["results"]] == [
        (603, "movie", 1999),
        (604, "movie", 2003),
    ]
    assert (await client.get("/api/v1/tmdb/search", params={"query": ""})).status == 422

    # A search asked again within minutes is answered from the cache.
    assert (
        dict(await registry.call_each(hookspecs.search_media, query="breaking"))["tmdb"] == results
    )
    assert tmdb.calls["GET /3/search/multi"] == 3


async def test_details_carry_seasons_images_and_the_ids_sonarr_and_radarr_use(
    sqlite_settings, make_client, tmdb
):
    client = await _portal(make_client, sqlite_settings, tmdb)

    matrix = await (await client.get("/api/v1/tmdb/movie/603")).json()
    assert matrix["title"] == "The Matrix" and matrix["year"] == 1999
    assert matrix["runtime"] == 136
    assert matrix["genres"] == ["Action", "Science Fiction"]
    assert matrix["imdb_id"] == "tt0133093" and matrix["seasons"] == []
    assert matrix["poster_url"] == POSTERS + "w500/f89U3ADr1oiB1s9GkdPOEpXUk5H.jpg"
    assert matrix["backdrop_url"] == POSTERS + "w1280/fNG7i7RqMErkcqhohV2a6cV1Ehy.jpg"
    assert matrix["overview"].startswith("Set in the 22nd century")

    show = await (await client.get("/api/v1/tmdb/tv/1396")).json()
    assert (show["title"], show["year"], show["runtime"]) == ("Breaking Bad", 2008, 45)
    assert (show["tvdb_id"], show["imdb_id"]) == (81189, "tt0903747")
    assert [(s["season_number"], s["episode_count"]) for s in show["seasons"]] == [
        (0, 9), (1, 7), (2, 13), (3, 13), (4, 13), (5, 16),
    ]  # fmt: skip
    assert show["genres"] == ["Drama", "Crime"] and show["status"] == "Ended"

    # Both came with their external ids in one call each (append_to_response).
    assert tmdb.calls["GET /3/movie/603"] == 1 and tmdb.calls["GET /3/tv/1396"] == 1
    assert not any(call.endswith("/external_ids") for call in tmdb.calls)

    # Asked again: from the cache, TMDB is not asked.
    again = await (await client.get("/api/v1/tmdb/movie/603")).json()
    assert again == matrix
    assert (await client.get("/api/v1/tmdb/tv/1396")).status == 200
    assert tmdb.calls["GET /3/movie/603"] == 1 and tmdb.calls["GET /3/tv/1396"] == 1
    # The image configuration was read once for everything (it is kept for hours).
    assert tmdb.calls["GET /3/configuration"] == 2  # the connection test, then once

    resp = await client.get("/api/v1/tmdb/movie/999999")
    assert resp.status == 404
    assert (await resp.json())["error"]["message"] == "TMDB has no film with the id 999999."
    resp = await client.get("/api/v1/tmdb/tv/breaking-bad")
    assert resp.status == 404
    assert (await resp.json())["error"]["message"] == (
        "TMDB has no series with the id breaking-bad."
    )
    assert tmdb.calls["GET /3/movie/999999"] == 1
    assert not any("breaking" in call for call in tmdb.calls)  # refused before asking TMDB


# --- rate limit ----------------------------------------------------------------------------


async def test_a_429_is_waited_out_once_then_a_second_is_a_clear_error(
    sqlite_settings, make_client, tmdb
):
    client = await _portal(make_client, sqlite_settings, tmdb)
    await _first_poll(tmdb)

    tmdb.rate_limit(1, retry_after=1)
    started = time.monotonic()
    resp = await client.get("/api/v1/tmdb/movie/603")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["title"] == "The Matrix"
    assert time.monotonic() - started >= 1.0  # TMDB's Retry-After, honoured
    assert tmdb.calls["GET /3/movie/603"] == 2  # refused once, then answered

    tmdb.rate_limit(2, retry_after=1)
    resp = await client.get("/api/v1/tmdb/tv/1396")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"] == {
        "code": "unavailable",
        "message": "TMDB is limiting MediaNest's requests; try again in 1 s",
        "details": None,
    }
    assert tmdb.calls["GET /3/tv/1396"] == 2  # one try, one retry: never hammered

    # While TMDB's wait lasts nothing is sent: the next call waits, then is sent once.
    started = time.monotonic()
    resp = await client.get("/api/v1/tmdb/movie/604")
    assert resp.status == 200
    assert time.monotonic() - started >= 0.5
    assert tmdb.calls["GET /3/movie/604"] == 1


# --- widget and page -----------------------------------------------------------------------


async def test_trending_widget_and_discover_page_with_data(sqlite_settings, make_client, tmdb):
    client = await _portal(make_client, sqlite_settings, tmdb)
    await _first_poll(tmdb)

    resp = await client.get("/widgets/tmdb/trending")
    assert resp.status == 200
    widget = await resp.text()
    assert "widget-unavailable" not in widget and 'data-topic="tmdb.discover"' in widget
    inception = _item(widget, 27205)
    assert "Inception" in inception and "2010 · film" in inception
    assert f'src="{POSTERS}w342/oYuLEt3zVCKq57qu2F8dT7NIa6f.jpg"' in inception
    assert '<span class="request-badge" data-tmdb-id="27205" data-media-type="movie">' in inception
    assert "2008 · series" in _item(widget, 1396)
    assert "Keanu" not in widget and "Starfall Protocol" not in widget  # people; unreleased

    dashboard = await (await client.get("/api/v1/dashboard")).json()
    trending = next(w for w in dashboard["widgets"] if w["name"] == "trending")
    assert trending["error"] is None and trending["notice"] is None
    assert trending["data"]["titles"][0]["title"] == "Inception"

    # A signed-in user who is no administrator sees the page and its link in the navigation.
    await add_user(client.app, "viewer", "viewer password 1")
    await client.sign_in("viewer", "viewer password 1")
    resp = await client.get("/discover")
    assert resp.status == 200
    page = await resp.text()
    assert "<title>Discover · MediaNest</title>" in page
    assert '<a href="/discover" aria-current="page">Discover</a>' in page
    assert '<a href="/discover">Discover</a>' in await (await client.get("/")).text()
    sections = dict(
        re.findall(r'<section class="section discover-section" id="discover-(\w+)"(.*?)</section>',
                   page, flags=re.DOTALL)
    )  # fmt: skip
    assert list(sections) == ["trending", "popular_movies", "popular_tv", "upcoming"]
    assert "Inception" in sections["trending"] and "Breaking Bad" in sections["trending"]
    assert "Dune: Part Two" in sections["popular_movies"]
    assert "Breaking Bad" not in sections["popular_movies"]
    assert "The Last of Us" in sections["popular_tv"]
    assert "Starfall Protocol" in sections["upcoming"] and "The Matrix" not in sections["upcoming"]
    release = (date.today() + timedelta(days=12)).isoformat()  # films to come show their day
    assert f'<time datetime="{release}">{release}</time> · film' in _item(page, 1290001)
    assert 'class="request-badge" data-tmdb-id="1290001"' in sections["upcoming"]

    # Viewers are served from what the poller fetched: TMDB was asked once per list.
    assert all(tmdb.calls[call] == 1 for call in LISTS)
    assert {q.get("region") for p, q in tmdb.queries if p.startswith("/3/movie/")} == {"US"}

    # Not signed in: off to the sign-in page; the plugin disabled: no page, no link.
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(client.make_url("/discover"), allow_redirects=False) as response,
    ):
        assert response.status == 303
        assert response.headers["Location"] == "/login?next=/discover"
    await client.sign_in("admin", "correct horse battery")
    assert (await client.post("/api/v1/plugins/tmdb/disable")).status == 200
    assert (await client.get("/discover")).status == 404
    assert 'href="/discover"' not in await (await client.get("/")).text()


async def test_widget_and_page_with_an_empty_tmdb(sqlite_settings, make_client):
    async with TMDB(seed=False) as empty:
        client = await _portal(make_client, sqlite_settings, empty)
        widget = await (await client.get("/widgets/tmdb/trending")).text()
        assert "Nothing is trending on TMDB this week." in widget
        assert "widget-unavailable" not in widget
        page = await (await client.get("/discover")).text()
        assert page.count("Nothing here right now.") == 4


async def test_enabled_without_a_key_it_says_so_everywhere(sqlite_settings, make_client):
    client = await make_client(sqlite_settings)
    await _enable(client)
    widget = await (await client.get("/widgets/tmdb/trending")).text()
    assert "TMDB is not set up yet" in widget and "widget-unavailable" not in widget
    page = await (await client.get("/discover")).text()
    assert "TMDB is not set up yet" in page
    resp = await client.get("/api/v1/tmdb/movie/603")
    assert resp.status == 409
    assert "API key" in (await resp.json())["error"]["message"]
    health = await (await client.get("/api/v1/plugins/tmdb/health")).json()
    assert health["checks"][0]["status"] == "unconfigured"
    registry = client.app[REGISTRY]
    assert dict(await registry.call_each(hookspecs.search_media, query="matrix"))["tmdb"] == []


async def test_widget_and_page_with_tmdb_down(tmp_path, make_client, interval):
    interval(0.3)
    settings = load_settings(data_dir=tmp_path / "data", widget_timeout=5)
    tmdb = TMDB()
    await tmdb.start()
    client = await _portal(make_client, settings, tmdb)
    await _first_poll(tmdb)
    assert "Inception" in await (await client.get("/widgets/tmdb/trending")).text()

    # TMDB goes away: once the poller finds it gone, the last good lists show, with their age.
    await tmdb.stop()

    async def stale() -> bool:
        resp = await client.get("/widgets/tmdb/trending")
        assert resp.status == 200
        return re.search(STALE, await resp.text()) is not None

    await wait_for(stale)
    widget = await (await client.get("/widgets/tmdb/trending")).text()
    assert "Inception" in widget and "widget-unavailable" not in widget
    page = await (await client.get("/discover")).text()
    assert len(re.findall(STALE, page)) == 4
    assert "Starfall Protocol" in page

    # A fresh start with TMDB down from the first: no earlier data, the tile says so.
    async with TMDB() as other:
        two = load_settings(data_dir=tmp_path / "two")
        fresh = await _portal(make_client, two, other, enable=False)
    await _enable(fresh)
    resp = await fresh.get("/widgets/tmdb/trending")
    assert resp.status == 200
    widget = await resp.text()
    assert "widget-unavailable" in widget
    assert "TMDB is unreachable; no earlier data to show." in widget
    resp = await fresh.get("/discover")
    assert resp.status == 200
    assert (await resp.text()).count("no earlier data to show") == 4


# --- poller --------------------------------------------------------------------------------


async def test_one_upstream_call_per_interval_for_any_number_of_viewers_and_processes(
    tmp_path, make_client, redis_url
):
    data = tmp_path / "data"
    async with TMDB() as tmdb:
        first = await _portal(make_client, load_settings(data_dir=data, redis_url=redis_url), tmdb)
        second = await make_client(load_settings(data_dir=data, redis_url=redis_url))
        registry = second.app[REGISTRY]

        async def both_active() -> bool:
            return registry.running_pollers("tmdb") == 1

        await wait_for(both_active)
        await _first_poll(tmdb)
        views = [c.get("/widgets/tmdb/trending") for c in (first, second) for _ in range(20)]
        views += [c.get("/discover") for c in (first, second) for _ in range(5)]
        responses = await asyncio.gather(*views)
        assert {r.status for r in responses} == {200}
        assert all("Inception" in text for text in [await r.text() for r in responses])
        # Two processes, two pollers, fifty viewers: TMDB was asked once for each list.
        assert all(tmdb.calls[call] == 1 for call in LISTS), tmdb.calls


async def test_the_lists_are_read_once_a_round_however_many_pages_and_stop_with_the_plugin(
    sqlite_settings, make_client, tmdb, interval
):
    # On a short interval the lists are read round after round by themselves...
    every = interval(0.3)
    client = await _portal(make_client, sqlite_settings, tmdb)

    async def read_twice() -> bool:
        return tmdb.calls[TRENDING] >= 2

    await wait_for(read_twice, 10)
    # ...and no more once the plugin is off.
    assert (await client.post("/api/v1/plugins/tmdb/disable")).status == 200
    assert client.app[REGISTRY].running_pollers("tmdb") == 0
    stopped = dict(tmdb.calls)
    await asyncio.sleep(4 * every)
    assert dict(tmdb.calls) == stopped

    # However many pages are served, TMDB is asked once a round. The rounds are run here (the
    # scheduled one is an hour away), so that how many there are does not depend on how fast
    # the machine is.
    interval(3600.0)
    asked = tmdb.calls[TRENDING]
    await _enable(client)

    async def first_round() -> bool:
        return tmdb.calls[TRENDING] == asked + 1

    await wait_for(first_round)
    plugin = client.app[REGISTRY].context("tmdb")
    for rounds in (1, 2, 3):
        *pages, _ = await asyncio.gather(
            *(client.get("/") for _ in range(10)),
            pollers.DISCOVERY.refresh_now(plugin, again=True),
        )
        assert {page.status for page in pages} == {200}
        assert tmdb.calls[TRENDING] == asked + 1 + rounds


async def test_open_dashboards_hear_of_new_trending_titles(
    sqlite_settings, make_client, tmdb, interval
):
    interval(0.3)
    client = await _portal(make_client, sqlite_settings, tmdb)
    await _first_poll(tmdb)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": [pollers.TOPIC]})
        assert orjson.loads((await ws.receive(timeout=2)).data) == {
            "type": "subscribed",
            "topics": [pollers.TOPIC],
        }
        tmdb.movies[424242] = Movie(
            424242, "Paper Lanterns", "2024-10-02", "tt4242424", "A night market.", [18],
            98, "/paperLanterns.jpg", "/paperLanternsBackdrop.jpg", 99.0, 9.1, 99_999,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while True:
            message = orjson.loads((await ws.receive(timeout=deadline - time.monotonic())).data)
            if message.get("topic") == pollers.TOPIC:
                break
        assert message["event"] == "updated" and message["data"]["ok"] is True
        widget = await (await client.get("/widgets/tmdb/trending")).text()
        assert "Paper Lanterns" in _item(widget, 424242)
        # Nothing new since: no more events, however often the poller runs.
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=1.0)


@pytest.mark.browser
async def test_the_trending_widget_on_an_open_dashboard_updates_live_in_a_browser(
    sqlite_settings, make_client, chromium, tmdb, interval
):
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        require(False, "Playwright is not installed (pip install playwright)")
    interval(0.3)
    client = await _portal(make_client, sqlite_settings, tmdb)
    await _first_poll(tmdb)
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(base_url=str(client.make_url("")))
            context.set_default_timeout(10_000)
            # Posters come from TMDB's image host, which stands in here for the real one.
            await context.route(
                f"{POSTERS}**",
                lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL),
            )
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
            widget = page.locator("#widget-tmdb-trending")
            await expect(widget).to_contain_text("Inception")
            await expect(widget).not_to_contain_text("Paper Lanterns")
            await expect(page.locator("html")).to_have_attribute(
                "data-subscribed", re.compile(re.escape(pollers.TOPIC))
            )

            # A film starts trending at TMDB: the open page shows it, without a reload.
            await page.evaluate("window.sameDocument = true")
            tmdb.movies[424242] = Movie(
                424242, "Paper Lanterns", "2024-10-02", "tt4242424", "A night market.", [18],
                98, "/paperLanterns.jpg", "/paperLanternsBackdrop.jpg", 99.0, 9.1, 99_999,
            )  # fmt: skip
            card = widget.locator('.poster-card[data-tmdb-id="424242"]')
            await expect(card).to_contain_text("Paper Lanterns")
            await expect(card).to_contain_text("2024 · film")
            await expect(widget).to_contain_text("Inception")
            await expect(card.locator("img.poster")).to_have_attribute(
                "src", f"{POSTERS}w342/paperLanterns.jpg"
            )
            assert await page.evaluate("window.sameDocument === true")
        finally:
            await browser.close()
    assert problems == []


# --- contract ------------------------------------------------------------------------------


def _spec() -> dict[str, Any]:
    folder = os.environ.get(CONTRACTS_ENV)
    require(folder and Path(folder).is_dir(), f"{CONTRACTS_ENV} does not name a folder")
    assert folder is not None
    return dict(json.loads((Path(folder) / "tmdb-v3.openapi.json").read_text()))


def _operation(spec: dict[str, Any], path: str) -> dict[str, Any] | None:
    for template, item in spec["paths"].items():
        pattern = re.sub(r"\{[^}]+\}", r"[^/]+", template)
        if re.fullmatch(pattern, path) and "get" in item:
            return dict(item["get"])
    return None


async def test_the_plugin_only_makes_calls_tmdb_documents(sqlite_settings, make_client, tmdb):
    spec = _spec()
    client = await _portal(make_client, sqlite_settings, tmdb)
    await _first_poll(tmdb)
    await client.app[REGISTRY].call_each(hookspecs.search_media, query="the")
    for path in ("/api/v1/tmdb/movie/603", "/api/v1/tmdb/tv/1396", "/discover"):
        assert (await client.get(path)).status == 200
    await client.get("/api/v1/tmdb/search", params={"query": "dune", "page": "2"})
    await client.get("/widgets/tmdb/trending")

    # MediaNest's own description of the plugin's API is valid and lists it.
    doc = await (await client.get("/api/openapi.json")).json()
    OpenAPIV31SpecValidator(doc).validate()
    for path in ("search", "movie/{tmdb_id}", "tv/{tmdb_id}"):
        assert doc["paths"][f"/api/v1/tmdb/{path}"]["get"]["tags"] == ["tmdb"]
    assert "/discover" not in doc["paths"]

    assert {c.split()[0] for c in tmdb.calls} == {"GET"}
    assert len(tmdb.queries) == sum(tmdb.calls.values()) >= 9
    for path, query in tmdb.queries:
        operation = _operation(spec, path)
        assert operation is not None, f"{path} is not in TMDB's description"
        documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        # The key may travel as api_key (v3), TMDB's older scheme, besides the bearer header.
        assert set(query) - {"api_key"} <= documented, (path, query)
