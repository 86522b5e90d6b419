"""The whole journey of a request, end to end against the fakes over real HTTP.

A friend asks for a film (and for two seasons of a series), an admin approves, the fake Radarr
(Sonarr) receives exactly one correct add, its queue shows progress, the request shows it, Plex
gains the item, and the request becomes available while the friend is told live. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from conftest import MakeClient, wait_for
from request_world import FILM, SERIES, SERIES_TVDB, World, world

from medianest.core import hookspecs
from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings, load_settings
from medianest.requests import desk as fulfilment
from medianest.requests.keys import REQUESTS


def quick(settings: Settings) -> Settings:
    return load_settings(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        request_check_interval=0.3,
    )


async def next_event(
    ws: Any, topic: str, event: str, within: float = 10.0, **expected: Any
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
        assert msg.type is WSMsgType.TEXT, msg
        message = orjson.loads(msg.data)
        data = message.get("data", {})
        if (
            message.get("topic") == topic
            and message.get("event") == event
            and all(data.get(k) == v for k, v in expected.items())
        ):
            return dict(message)


async def subscribe(ws: Any, *topics: str) -> None:
    await ws.send_json({"action": "subscribe", "topics": list(topics)})
    answer = orjson.loads((await ws.receive(timeout=2)).data)
    assert answer == {"type": "subscribed", "topics": list(topics)}


async def status_of(w: World, request_id: str) -> dict[str, Any]:
    resp = await w.friend.get(f"/api/v1/requests/{request_id}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


@pytest.mark.usefixtures("fast")
async def test_a_film_from_request_to_plex(make_client: MakeClient, db_settings: Settings) -> None:
    async with world(make_client, quick(db_settings)) as w:
        # Search: The Matrix is in Plex already; its sequel can be requested.
        found = await (await w.friend.get("/api/v1/search", params={"q": "matrix"})).json()
        states = {r["tmdb_id"]: r["status"]["state"] for r in found["results"]}
        assert states[603] == "available" and states[FILM] == "requestable"

        friend_ws = await w.friend.ws_connect("/ws")
        admin_ws = await w.admin.ws_connect("/ws")
        await subscribe(friend_ws, "me")
        await subscribe(admin_ws, "requests")

        resp = await w.friend.post(
            "/api/v1/requests", json={"media_type": "movie", "tmdb_id": FILM}
        )
        assert resp.status == 201, await resp.text()
        created = await resp.json()
        request_id = created["request"]["id"]
        assert created["request"]["status"] == "pending"
        assert created["request"]["title"] == "The Matrix Reloaded"
        # The admin hears of it at once.
        heard = await next_event(admin_ws, "requests", "created", id=request_id)
        assert heard["data"]["requested_by"] == "friend"

        # Asking again is refused, saying who asked.
        again = await w.friend.post(
            "/api/v1/requests", json={"media_type": "movie", "tmdb_id": FILM}
        )
        assert again.status == 409
        assert "already been requested by you" in (await again.json())["error"]["message"]
        # So is a film Plex has.
        have = await w.friend.post("/api/v1/requests", json={"media_type": "movie", "tmdb_id": 603})
        assert have.status == 409
        assert "already available in Home Server" in (await have.json())["error"]["message"]

        assert w.radarr.added_movies == []
        resp = await w.admin.post(
            f"/api/v1/requests/{request_id}/approve", json={"comment": "Enjoy"}
        )
        assert resp.status == 200, await resp.text()
        await next_event(friend_ws, "me", "notification", kind="MEDIA_APPROVED")
        await wait_for(lambda: _status_is(w, request_id, "processing"), seconds=10)

        # Exactly one add, with what Radarr's spec requires.
        assert len(w.radarr.added_movies) == 1
        added = w.radarr.added_movies[0]
        assert added["tmdbId"] == FILM
        assert added["qualityProfileId"] == 4 and added["rootFolderPath"] == "/movies"
        assert added["monitored"] is True and added["addOptions"]["searchForMovie"] is True

        # The download queue shows progress, and so does the request.
        movie_id = next(m.id for m in w.radarr.movies.values() if m.film.tmdb_id == FILM)
        queue_id = w.radarr.add_queue_item(movie_id)
        w.radarr.advance_download(queue_id, 0.4)
        event = await next_event(friend_ws, "me", "request-progress", id=request_id)
        assert event["data"]["progress"]["percent"] == pytest.approx(40, abs=1)
        shown = await status_of(w, request_id)
        assert shown["status"] == "processing"
        assert shown["progress"]["percent"] == pytest.approx(40, abs=1)
        assert shown["progress"]["items"][0]["instance"] == "Radarr"

        # Downloaded, imported, and Plex finds it: the request is available and the friend told.
        w.radarr.advance_download(queue_id, 1.0)
        w.radarr.import_download(queue_id)
        w.pms.add_movie("The Matrix Reloaded", 2003, tmdb_id=FILM, imdb_id="tt0234215")
        update = await next_event(
            friend_ws, "me", "request-updated", id=request_id, status="available"
        )
        assert update["data"]["status_text"] == "available"
        told = await next_event(friend_ws, "me", "notification", kind="MEDIA_AVAILABLE")
        assert told["data"]["subject"] == "The Matrix Reloaded (2003)"
        assert told["data"]["message"] == "Ready to watch in Home Server."

        shown = await status_of(w, request_id)
        assert [h["status"] for h in shown["history"]] == [
            "pending",
            "approved",
            "processing",
            "available",
        ]
        assert shown["history"][1]["by"] == "admin" and shown["history"][1]["comment"] == "Enjoy"
        notes = await (await w.friend.get("/api/v1/notifications")).json()
        assert notes["unread"] == 2
        assert [n["kind"] for n in notes["items"]] == ["MEDIA_AVAILABLE", "MEDIA_APPROVED"]
        # Still exactly one add in Radarr, whatever rounds of checking went by.
        assert len(w.radarr.added_movies) == 1
        await friend_ws.close()
        await admin_ws.close()


async def _status_is(w: World, request_id: str, status: str) -> bool:
    return (await status_of(w, request_id))["status"] == status


@pytest.mark.usefixtures("fast")
async def test_two_seasons_of_a_series_from_request_to_plex(
    make_client: MakeClient, db_settings: Settings
) -> None:
    async with world(make_client, quick(db_settings)) as w:
        details = await (await w.friend.get(f"/api/v1/media/tv/{SERIES}")).json()
        assert details["title"] == "Game of Thrones"
        episodes = {s["number"]: s["episode_count"] for s in details["seasons"]}
        assert all(s["state"] == "requestable" for s in details["seasons"])

        friend_ws = await w.friend.ws_connect("/ws")
        await subscribe(friend_ws, "me")
        resp = await w.friend.post(
            "/api/v1/requests", json={"media_type": "tv", "tmdb_id": SERIES, "seasons": [1, 2]}
        )
        assert resp.status == 201, await resp.text()
        request_id = (await resp.json())["request"]["id"]

        # The same seasons again: refused; one more season: added to the pending request.
        again = await w.friend.post(
            "/api/v1/requests", json={"media_type": "tv", "tmdb_id": SERIES, "seasons": [2, 1]}
        )
        assert again.status == 409
        assert "seasons 1, 2 already requested by you" in (await again.json())["error"]["message"]
        more = await w.friend.post(
            "/api/v1/requests", json={"media_type": "tv", "tmdb_id": SERIES, "seasons": [2, 3]}
        )
        assert more.status == 200, await more.text()
        extended = await more.json()
        assert extended["extended"] is True and extended["request"]["id"] == request_id
        assert extended["request"]["seasons"] == [1, 2, 3]
        assert "season 2 left out" in extended["message"]
        # ...and a season the series does not have is refused, naming those it has.
        bad = await w.friend.post(
            "/api/v1/requests", json={"media_type": "tv", "tmdb_id": SERIES, "seasons": [99]}
        )
        assert bad.status == 422
        assert "Game of Thrones has no season 99" in (await bad.json())["error"]["message"]
        # The friend withdraws season 3 the only way there is: the admin declines and the
        # friend asks again for just 1 and 2.
        resp = await w.admin.post(
            f"/api/v1/requests/{request_id}/decline", json={"comment": "One at a time"}
        )
        assert resp.status == 200
        told = await next_event(friend_ws, "me", "notification", kind="MEDIA_DECLINED")
        assert "One at a time" in told["data"]["message"]
        resp = await w.friend.post(
            "/api/v1/requests", json={"media_type": "tv", "tmdb_id": SERIES, "seasons": [1, 2]}
        )
        assert resp.status == 201, await resp.text()
        request_id = (await resp.json())["request"]["id"]

        resp = await w.admin.post(f"/api/v1/requests/{request_id}/approve", json={})
        assert resp.status == 200
        await wait_for(lambda: _status_is(w, request_id, "processing"), seconds=10)
        assert len(w.sonarr.added_series) == 1
        added = w.sonarr.added_series[0]
        assert added["tvdbId"] == SERIES_TVDB
        monitored = {s["seasonNumber"]: s["monitored"] for s in added["seasons"]}
        assert {n for n, m in monitored.items() if m} == {1, 2}

        # An episode of season 1 downloads: the request shows it.
        series_id = next(s.id for s in w.sonarr.series.values() if s.show.tvdb_id == SERIES_TVDB)
        queue_id = w.sonarr.add_queue_item(w.sonarr.episode_id(series_id, 1, 1))
        w.sonarr.advance_download(queue_id, 0.5)
        event = await next_event(friend_ws, "me", "request-progress", id=request_id)
        assert event["data"]["progress"]["percent"] == pytest.approx(50, abs=1)
        assert "S01E01" in event["data"]["progress"]["items"][0]["title"]

        # Plex gets season 1: partly available; then season 2: available.
        show = w.pms.add_show(
            "Game of Thrones", 2011, tvdb_id=SERIES_TVDB, tmdb_id=SERIES, seasons={1: episodes[1]}
        )
        update = await next_event(
            friend_ws, "me", "request-updated", id=request_id, status="partially_available"
        )
        assert update["data"]["status_text"] == "partly available"
        w.pms.add_season(show, 2, episodes[2])
        await next_event(friend_ws, "me", "request-updated", id=request_id, status="available")
        told = await next_event(friend_ws, "me", "notification", kind="MEDIA_AVAILABLE")
        assert told["data"]["subject"] == "Game of Thrones (2011), seasons 1, 2"
        assert len(w.sonarr.added_series) == 1
        await friend_ws.close()


@pytest.mark.usefixtures("fast")
async def test_a_round_over_more_films_than_a_batch_follows_every_request(
    make_client: MakeClient, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tracking reads the followed requests a batch of media items at a time: with batches of
    # one, each film is a batch of its own, and one round over all requests (Plex's news of
    # each film is not passed on here, and no round runs by itself) finds every one of them.
    monkeypatch.setattr(fulfilment, "TRACK_BATCH", 1)
    films = [(FILM, "The Matrix Reloaded", 2003), (693134, "Dune: Part Two", 2024)]
    async with world(make_client, sqlite_settings) as w:
        made = []
        for tmdb_id, _, _ in films:
            resp = await w.admin.post(
                "/api/v1/requests", json={"media_type": "movie", "tmdb_id": tmdb_id}
            )
            assert resp.status == 201, await resp.text()
            made.append((await resp.json())["request"]["id"])
        await wait_for(lambda: _all_are(w, made, "processing"), seconds=10)
        w.app[REGISTRY].media_listener = None
        for tmdb_id, title, year in films:
            w.pms.add_movie(title, year, tmdb_id=tmdb_id)
        await wait_for(lambda: _plex_has(w, [tmdb_id for tmdb_id, _, _ in films]), seconds=10)
        await w.app[REQUESTS].track()
        assert await _all_are(w, made, "available")


async def _plex_has(w: World, tmdb_ids: list[int]) -> bool:
    for tmdb_id in tmdb_ids:
        answer = await w.app[REGISTRY].call_plugin(
            "plex", hookspecs.check_availability, ids={"tmdb": str(tmdb_id)}, media_type="movie"
        )
        if answer is None or not answer.available:
            return False
    return True


async def _all_are(w: World, request_ids: list[str], status: str) -> bool:
    for request_id in request_ids:
        resp = await w.admin.get(f"/api/v1/requests/{request_id}")
        if (await resp.json())["status"] != status:
            return False
    return True
