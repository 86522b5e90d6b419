"""The fake Tautulli, TMDB and YouTube servers answer as the real services do, over real HTTP.

Behaviour: each fake's auth refusals, errors, paging and test controls, as a client sees them.
Contract: every route a fake serves exists in the service's published description with the
same method, and its answers validate against the described response schemas (TMDB's OpenAPI
document, YouTube's discovery document converted to JSON Schema). Tautulli publishes no spec;
its answers are checked against the fields of the summary in the contracts folder and against
responses recorded from a real server. The specs and recordings are read from the folders named
by ``MEDIANEST_TEST_CONTRACTS_DIR`` and ``MEDIANEST_TEST_RECORDED_DIR``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from conftest import require
from jsonschema import Draft202012Validator
from openapi_schema_validator import OAS31Validator

from medianest.testing import FakeServer, FakeTautulli, FakeTMDB, FakeYouTube

CONTRACTS_ENV = "MEDIANEST_TEST_CONTRACTS_DIR"
RECORDED_ENV = "MEDIANEST_TEST_RECORDED_DIR"
TMDB_UNAUTHORIZED = {
    "status_code": 7,
    "status_message": "Invalid API key: You must be granted a valid key.",
    "success": False,
}


def _folder(env: str) -> Path:
    value = os.environ.get(env)
    require(value and Path(value).is_dir(), f"{env} does not name a folder")
    assert value is not None
    return Path(value)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
async def tautulli() -> AsyncIterator[FakeTautulli]:
    fake = FakeTautulli()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def tmdb() -> AsyncIterator[FakeTMDB]:
    fake = FakeTMDB()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def youtube() -> AsyncIterator[FakeYouTube]:
    fake = FakeYouTube()
    await fake.start()
    yield fake
    await fake.stop()


async def _tautulli(
    http: httpx.AsyncClient, fake: FakeTautulli, cmd: str | None, **params: Any
) -> tuple[int, dict[str, Any]]:
    query = {"apikey": fake.apikey, **({"cmd": cmd} if cmd else {}), **params}
    resp = await http.get(f"{fake.url}/api/v2", params=query)
    return resp.status_code, resp.json()["response"]


async def _tmdb(http: httpx.AsyncClient, fake: FakeTMDB, path: str, **params: Any) -> Any:
    resp = await http.get(
        f"{fake.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {fake.read_token}"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _youtube(http: httpx.AsyncClient, fake: FakeYouTube, resource: str, **params: Any) -> Any:
    resp = await http.get(f"{fake.url}/youtube/v3/{resource}", params={"key": fake.key, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


# --- Tautulli ------------------------------------------------------------------------------


async def test_tautulli_refuses_a_missing_or_wrong_apikey(
    http: httpx.AsyncClient, tautulli: FakeTautulli
) -> None:
    resp = await http.get(f"{tautulli.url}/api/v2", params={"cmd": "get_activity"})
    assert resp.status_code == 401
    assert resp.json()["response"]["message"] == "Parameter apikey is required"

    resp = await http.get(
        f"{tautulli.url}/api/v2", params={"apikey": "0" * 32, "cmd": "get_activity"}
    )
    assert resp.status_code == 401
    assert resp.json() == {"response": {"result": "error", "message": "Invalid apikey", "data": {}}}
    assert tautulli.commands["get_activity"] == 0

    tautulli.api_enabled = False
    status, body = await _tautulli(http, tautulli, "get_activity")
    assert (status, body["message"]) == (404, "API not enabled")


async def test_tautulli_rejects_a_missing_or_unknown_command(
    http: httpx.AsyncClient, tautulli: FakeTautulli
) -> None:
    status, body = await _tautulli(http, tautulli, "get_everything")
    assert status == 400
    assert body["result"] == "error" and body["data"] == {}
    assert body["message"].startswith("Unknown command: get_everything. Possible commands are: ")
    assert "get_activity" in body["message"]

    status, body = await _tautulli(http, tautulli, None)
    assert status == 400
    assert body["message"].startswith("Parameter cmd is required.")

    # The old /api path only points to v2.
    resp = await http.get(f"{tautulli.url}/api", params={"apikey": tautulli.apikey})
    assert resp.json()["response"]["message"] == "Please use the /api/v2 endpoint."


async def test_tautulli_activity_follows_the_streams_a_test_starts_and_stops(
    http: httpx.AsyncClient,
) -> None:
    fake = FakeTautulli(seed=False)
    alice, bob = fake.add_user("alice", friendly_name="Alice"), fake.add_user("bob")
    episode = fake.add_media(
        "Ozymandias",
        "episode",
        grandparent_title="Breaking Bad",
        grandparent_rating_key=2000,
        duration=2_820_000,
    )
    movie = fake.add_media("The Matrix", year=1999, duration=8_160_000)
    async with fake:
        status, body = await _tautulli(http, fake, "get_activity")
        assert status == 200 and body["result"] == "success" and body["message"] is None
        assert body["data"]["stream_count"] == "0" and body["data"]["sessions"] == []

        first = fake.start_stream(alice, episode, progress_percent=38, bandwidth=12000)
        fake.start_stream(
            bob, movie, transcode_decision="transcode", bandwidth=4000, location="wan"
        )
        data = (await _tautulli(http, fake, "get_activity"))[1]["data"]
        assert data["stream_count"] == "2"
        assert (data["stream_count_direct_play"], data["stream_count_transcode"]) == (1, 1)
        assert (data["total_bandwidth"], data["lan_bandwidth"], data["wan_bandwidth"]) == (
            16000,
            12000,
            4000,
        )
        session = data["sessions"][0]
        assert session["user"] == "alice" and session["friendly_name"] == "Alice"
        assert session["full_title"] == "Breaking Bad - Ozymandias"
        assert session["progress_percent"] == "38"
        assert session["transcode_decision"] == "direct play"
        assert session["bandwidth"] == "12000"

        fake.set_bandwidth(first.session_key, 20000)
        fake.update_stream(first.session_key, state="paused", progress_percent=90)
        one = (await _tautulli(http, fake, "get_activity", session_key=first.session_key))[1]
        assert one["data"]["state"] == "paused" and one["data"]["bandwidth"] == "20000"
        assert (await _tautulli(http, fake, "get_activity"))[1]["data"]["total_bandwidth"] == 24000

        fake.stop_stream(first.session_key)
        data = (await _tautulli(http, fake, "get_activity"))[1]["data"]
        assert data["stream_count"] == "1" and data["total_bandwidth"] == 4000
        # Like Tautulli, a finished stream lands in the history.
        history = (await _tautulli(http, fake, "get_history"))[1]["data"]
        assert history["recordsTotal"] == 1
        row = history["data"][0]
        assert (row["user"], row["full_title"]) == ("alice", "Breaking Bad - Ozymandias")
        assert row["percent_complete"] == 90 and row["watched_status"] == 1
        assert fake.commands["get_activity"] == 5


async def test_tautulli_home_stats_count_plays_within_the_time_range(
    http: httpx.AsyncClient,
) -> None:
    fake = FakeTautulli(seed=False)
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    matrix = fake.add_media("The Matrix", duration=8_160_000)
    inception = fake.add_media("Inception", duration=8_880_000)
    for days in (1, 2, 3, 6):
        fake.add_history(alice, matrix, days_ago=days)
    fake.add_history(bob, inception, days_ago=4)
    fake.add_history(bob, matrix, days_ago=5)
    fake.add_history(bob, inception, days_ago=45)
    # bob once left a film playing all night: by time watched he leads.
    now = time.time()
    fake.add_history(bob, inception, started=now - 86000, stopped=now - 40000)
    async with fake:
        status, body = await _tautulli(http, fake, "get_home_stats", stat_id="top_movies")
        assert status == 200
        [block] = body["data"]
        assert (block["stat_id"], block["stat_type"]) == ("top_movies", "total_plays")
        assert [(r["title"], r["total_plays"]) for r in block["rows"]] == [
            ("The Matrix", 5),
            ("Inception", 2),
        ]
        assert block["rows"][0]["users_watched"] == 2

        _, body = await _tautulli(http, fake, "get_home_stats", stat_id="top_movies", time_range=60)
        assert [r["total_plays"] for r in body["data"][0]["rows"]] == [5, 3]

        _, body = await _tautulli(http, fake, "get_home_stats", stat_id="top_users")
        assert [(r["user"], r["total_plays"]) for r in body["data"][0]["rows"]] == [
            ("alice", 4),
            ("bob", 3),
        ]
        _, body = await _tautulli(
            http, fake, "get_home_stats", stat_id="top_users", stats_type="duration"
        )
        [block] = body["data"]
        assert block["stat_type"] == "total_duration"
        assert [r["user"] for r in block["rows"]] == ["bob", "alice"]
        assert block["rows"][0]["total_duration"] > 46000

        _, body = await _tautulli(http, fake, "get_home_stats", time_range=30, stats_count=1)
        blocks = {b["stat_id"]: b for b in body["data"]}
        assert len(blocks["top_movies"]["rows"]) == 1
        assert blocks["last_watched"]["rows"][0]["title"] == "Inception"


async def test_tautulli_history_pages_and_filters(http: httpx.AsyncClient) -> None:
    fake = FakeTautulli(seed=False)
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    film = fake.add_media("The Matrix")
    episode = fake.add_media("Pilot", "episode", grandparent_title="Breaking Bad")
    for n in range(30):
        fake.add_history(alice if n % 3 else bob, episode if n % 2 else film, days_ago=n)
    async with fake:
        _, body = await _tautulli(http, fake, "get_history", start=10, length=10)
        page = body["data"]
        assert (page["recordsTotal"], page["recordsFiltered"], len(page["data"])) == (30, 30, 10)
        dates = [row["date"] for row in page["data"]]
        assert dates == sorted(dates, reverse=True)

        _, body = await _tautulli(http, fake, "get_history", user_id=bob.user_id, length=100)
        assert body["data"]["recordsFiltered"] == 10
        assert {row["user"] for row in body["data"]["data"]} == {"bob"}

        _, body = await _tautulli(
            http, fake, "get_history", media_type="episode", order_dir="asc", length=2
        )
        rows = body["data"]["data"]
        assert body["data"]["recordsFiltered"] == 15
        assert rows[0]["full_title"] == "Breaking Bad - Pilot" and rows[0]["date"] < rows[1]["date"]


async def test_tautulli_status_commands_and_form_posts(
    http: httpx.AsyncClient, tautulli: FakeTautulli
) -> None:
    # status: the command's own result and message are lifted into the envelope.
    status, body = await _tautulli(http, tautulli, "status")
    assert (status, body) == (200, {"result": "success", "message": "Ok", "data": {}})
    _, body = await _tautulli(http, tautulli, "status", check="database")
    assert body["message"] == "Database ok" and body["data"] == {"integrity_check": "ok"}

    _, body = await _tautulli(http, tautulli, "server_status")
    assert body["data"] == {"connected": True}
    tautulli.plex_connected = False
    _, body = await _tautulli(http, tautulli, "server_status")
    assert body["data"] == {"connected": False} and body["result"] == "success"
    _, body = await _tautulli(http, tautulli, "get_activity")
    assert body["data"] == {}

    _, body = await _tautulli(http, tautulli, "arnold")
    assert isinstance(body["data"], str) and body["data"]
    _, body = await _tautulli(http, tautulli, "get_server_info")
    assert body["data"]["pms_name"] == tautulli.pms_name
    assert body["data"]["pms_identifier"] == tautulli.pms_identifier

    # A form-encoded POST is the same call.
    resp = await http.post(
        f"{tautulli.url}/api/v2", data={"apikey": tautulli.apikey, "cmd": "get_users"}
    )
    _, by_get = await _tautulli(http, tautulli, "get_users")
    assert resp.json()["response"] == by_get

    tautulli.plex_connected = True
    stream = tautulli.streams[0]
    _, body = await _tautulli(http, tautulli, "terminate_session", session_key=stream.session_key)
    assert body["message"] == "Session terminated."
    assert stream not in tautulli.streams
    status, body = await _tautulli(http, tautulli, "terminate_session", session_key=999)
    assert status == 400 and body["message"].startswith("Failed to terminate session")


# --- TMDB ----------------------------------------------------------------------------------


async def test_tmdb_accepts_the_bearer_token_or_api_key_and_refuses_others(
    http: httpx.AsyncClient, tmdb: FakeTMDB
) -> None:
    url = f"{tmdb.url}/3/movie/603"
    ok = await http.get(url, headers={"Authorization": f"Bearer {tmdb.read_token}"})
    assert ok.status_code == 200 and ok.json()["title"] == "The Matrix"
    assert tmdb.requests[-1]["Authorization"] == f"Bearer {tmdb.read_token}"
    ok = await http.get(url, params={"api_key": tmdb.api_key})
    assert ok.status_code == 200

    for kwargs in (
        {"headers": {"Authorization": "Bearer not-a-token"}},
        {"params": {"api_key": "0" * 32}},
        {},
    ):
        resp = await http.get(url, **kwargs)
        assert resp.status_code == 401
        assert resp.json() == TMDB_UNAUTHORIZED


async def test_tmdb_search_mixes_movies_shows_and_people(
    http: httpx.AsyncClient, tmdb: FakeTMDB
) -> None:
    multi = await _tmdb(http, tmdb, "/3/search/multi", query="breaking", include_adult="false")
    assert [(r["media_type"], r["id"]) for r in multi["results"]] == [
        ("tv", 1396),
        ("movie", 50619),
    ]
    assert multi["results"][0]["name"] == "Breaking Bad" and "title" not in multi["results"][0]
    people = await _tmdb(http, tmdb, "/3/search/multi", query="keanu")
    [person] = people["results"]
    assert person["media_type"] == "person" and person["name"] == "Keanu Reeves"
    assert 603 in [k["id"] for k in person["known_for"]]

    movies = await _tmdb(http, tmdb, "/3/search/movie", query="Matrix", language="en-US")
    assert [m["id"] for m in movies["results"]] == [603, 604]
    assert movies["results"][0]["release_date"] == "1999-03-31"
    reloaded = await _tmdb(http, tmdb, "/3/search/movie", query="matrix", year="2003")
    assert [m["id"] for m in reloaded["results"]] == [604]

    shows = await _tmdb(http, tmdb, "/3/search/tv", query="breaking bad")
    assert [s["id"] for s in shows["results"]] == [1396]

    second = await _tmdb(http, tmdb, "/3/search/movie", query="matrix", page=2)
    assert (second["page"], second["results"], second["total_results"]) == (2, [], 2)
    resp = await http.get(
        f"{tmdb.url}/3/search/movie",
        params={"query": "matrix", "page": 501, "api_key": tmdb.api_key},
    )
    assert resp.status_code == 400 and resp.json()["status_code"] == 22


async def test_tmdb_details_carry_the_ids_other_services_use(
    http: httpx.AsyncClient, tmdb: FakeTMDB
) -> None:
    matrix = await _tmdb(http, tmdb, "/3/movie/603", append_to_response="external_ids")
    assert matrix["imdb_id"] == "tt0133093"
    assert matrix["external_ids"]["imdb_id"] == "tt0133093"
    assert "external_ids" not in await _tmdb(http, tmdb, "/3/movie/603")
    assert (await _tmdb(http, tmdb, "/3/movie/603/external_ids"))["imdb_id"] == "tt0133093"

    show = await _tmdb(http, tmdb, "/3/tv/1396", append_to_response="external_ids,credits")
    assert show["external_ids"]["tvdb_id"] == 81189
    assert show["number_of_seasons"] == 5
    regular = [(s["season_number"], s["episode_count"]) for s in show["seasons"]][1:]
    assert regular == [(1, 7), (2, 13), (3, 13), (4, 13), (5, 16)]
    assert show["number_of_episodes"] == 62
    external = await _tmdb(http, tmdb, "/3/tv/1396/external_ids")
    assert (external["id"], external["tvdb_id"], external["imdb_id"]) == (1396, 81189, "tt0903747")

    headers = {"Authorization": f"Bearer {tmdb.read_token}"}
    for path in ("/3/movie/1", "/3/tv/1", "/3/movie/not-a-number", "/3/nothing"):
        resp = await http.get(f"{tmdb.url}{path}", headers=headers)
        assert resp.status_code == 404, path
        assert resp.json()["status_code"] == 34


async def test_tmdb_lists_popular_upcoming_and_trending(
    http: httpx.AsyncClient, tmdb: FakeTMDB
) -> None:
    config = await _tmdb(http, tmdb, "/3/configuration")
    assert config["images"]["secure_base_url"] == "https://image.tmdb.org/t/p/"
    assert "w500" in config["images"]["poster_sizes"]

    popular = (await _tmdb(http, tmdb, "/3/movie/popular"))["results"]
    scores = [m["popularity"] for m in popular]
    assert scores == sorted(scores, reverse=True) and 603 in [m["id"] for m in popular]
    upcoming = await _tmdb(http, tmdb, "/3/movie/upcoming")
    today = time.strftime("%Y-%m-%d")
    assert upcoming["results"], "no upcoming films"
    for film in upcoming["results"]:
        assert upcoming["dates"]["minimum"] <= film["release_date"] <= upcoming["dates"]["maximum"]
        assert film["release_date"] > today
    assert not {m["id"] for m in upcoming["results"]} & {m["id"] for m in popular}

    shows = (await _tmdb(http, tmdb, "/3/tv/popular"))["results"]
    assert {s["id"] for s in shows} >= {1396, 1399}

    day = (await _tmdb(http, tmdb, "/3/trending/all/day"))["results"]
    assert {r["media_type"] for r in day} == {"movie", "tv"}
    week = (await _tmdb(http, tmdb, "/3/trending/all/week"))["results"]
    assert [r["id"] for r in day] != [r["id"] for r in week]
    tv_only = (await _tmdb(http, tmdb, "/3/trending/tv/week"))["results"]
    assert {r["media_type"] for r in tv_only} == {"tv"}
    people = (await _tmdb(http, tmdb, "/3/trending/person/day"))["results"]
    assert {r["media_type"] for r in people} == {"person"}


async def test_tmdb_rate_limit_answers_429_with_retry_after(
    http: httpx.AsyncClient, tmdb: FakeTMDB
) -> None:
    tmdb.rate_limit(2, retry_after=3)
    url, params = f"{tmdb.url}/3/movie/603", {"api_key": tmdb.api_key}
    for _ in range(2):
        resp = await http.get(url, params=params)
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "3"
        assert resp.json()["status_code"] == 25 and resp.json()["success"] is False
    assert (await http.get(url, params=params)).status_code == 200


# --- YouTube -------------------------------------------------------------------------------


async def test_youtube_refuses_a_missing_or_wrong_key(
    http: httpx.AsyncClient, youtube: FakeYouTube
) -> None:
    url = f"{youtube.url}/youtube/v3/videos"
    resp = await http.get(url, params={"part": "snippet", "id": "aqz-KE-bpKQ"})
    assert resp.status_code == 403
    assert resp.json()["error"]["errors"][0]["reason"] == "forbidden"

    resp = await http.get(url, params={"part": "snippet", "id": "aqz-KE-bpKQ", "key": "AIzaNo"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == 400
    assert error["message"] == "API key not valid. Please pass a valid API key."
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert youtube.quota_used == 0


async def test_youtube_requires_part_and_answers_only_the_parts_asked_for(
    http: httpx.AsyncClient, youtube: FakeYouTube
) -> None:
    url = f"{youtube.url}/youtube/v3/videos"
    resp = await http.get(url, params={"key": youtube.key, "id": "aqz-KE-bpKQ"})
    assert resp.status_code == 400
    [error] = resp.json()["error"]["errors"]
    assert (error["reason"], error["location"], error["locationType"]) == (
        "required",
        "part",
        "parameter",
    )
    resp = await http.get(url, params={"key": youtube.key, "id": "x", "part": "snippet,bogus"})
    assert resp.status_code == 400
    assert resp.json()["error"]["errors"][0]["reason"] == "unknownPart"

    body = await _youtube(http, youtube, "videos", part="snippet", id="aqz-KE-bpKQ")
    [video] = body["items"]
    assert video["snippet"]["channelTitle"] == "Blender" and "contentDetails" not in video
    body = await _youtube(
        http, youtube, "videos", part="contentDetails,statistics", id="aqz-KE-bpKQ,eRsGyueVLvQ"
    )
    assert [v["contentDetails"]["duration"] for v in body["items"]] == ["PT10M35S", "PT14M48S"]
    assert "snippet" not in body["items"][0]
    assert body["items"][0]["statistics"]["viewCount"].isdigit()
    empty = await _youtube(http, youtube, "videos", part="id", id="doesNotExist")
    assert empty["items"] == [] and empty["pageInfo"]["totalResults"] == 0


async def test_youtube_playlist_items_page_with_tokens(
    http: httpx.AsyncClient, youtube: FakeYouTube
) -> None:
    [playlist] = (
        await _youtube(
            http,
            youtube,
            "playlists",
            part="snippet,contentDetails",
            channelId="UCSMOQeBJ2RAnuFungnQOxLg",
        )
    )["items"]
    assert playlist["contentDetails"]["itemCount"] == 3

    first = await _youtube(
        http, youtube, "playlistItems", part="snippet", playlistId=playlist["id"], maxResults=2
    )
    assert first["pageInfo"] == {"totalResults": 3, "resultsPerPage": 2}
    assert len(first["items"]) == 2 and "prevPageToken" not in first
    second = await _youtube(
        http,
        youtube,
        "playlistItems",
        part="snippet",
        playlistId=playlist["id"],
        maxResults=2,
        pageToken=first["nextPageToken"],
    )
    assert "nextPageToken" not in second and second["prevPageToken"]
    items = first["items"] + second["items"]
    assert [i["snippet"]["position"] for i in items] == [0, 1, 2]
    assert [i["snippet"]["resourceId"]["videoId"] for i in items] == [
        "aqz-KE-bpKQ",
        "eRsGyueVLvQ",
        "R6MlUcmOul8",
    ]
    # The same entry keeps its id from one call to the next.
    again = await _youtube(http, youtube, "playlistItems", part="id", playlistId=playlist["id"])
    assert [i["id"] for i in again["items"]] == [i["id"] for i in items]

    # The channel's uploads playlist lists its videos, newest first.
    [channel] = (
        await _youtube(http, youtube, "channels", part="contentDetails", forHandle="@blender")
    )["items"]
    uploads = channel["contentDetails"]["relatedPlaylists"]["uploads"]
    body = await _youtube(http, youtube, "playlistItems", part="contentDetails", playlistId=uploads)
    assert [i["contentDetails"]["videoId"] for i in body["items"]] == [
        "aqz-KE-bpKQ",
        "R6MlUcmOul8",
        "eRsGyueVLvQ",
    ]

    params = {"key": youtube.key, "part": "id"}
    resp = await http.get(
        f"{youtube.url}/youtube/v3/playlistItems", params={**params, "playlistId": "PLnope"}
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["errors"][0]["reason"] == "playlistNotFound"
    resp = await http.get(
        f"{youtube.url}/youtube/v3/playlistItems",
        params={**params, "playlistId": playlist["id"], "maxResults": 51},
    )
    assert resp.status_code == 400


async def test_youtube_channels_search_and_quota(
    http: httpx.AsyncClient, youtube: FakeYouTube
) -> None:
    by_id = await _youtube(
        http, youtube, "channels", part="snippet,statistics", id="UCSMOQeBJ2RAnuFungnQOxLg"
    )
    [channel] = by_id["items"]
    assert channel["snippet"]["customUrl"] == "@blender"
    assert channel["statistics"]["subscriberCount"].isdigit()
    nobody = await _youtube(http, youtube, "channels", part="id", forHandle="@nobody")
    assert "items" not in nobody and nobody["pageInfo"]["totalResults"] == 0

    used = youtube.quota_used
    found = await _youtube(http, youtube, "search", part="snippet", q="tears steel", type="video")
    assert youtube.quota_used - used == 100
    [hit] = found["items"]
    assert hit["id"] == {"kind": "youtube#video", "videoId": "R6MlUcmOul8"}
    # Search titles arrive HTML-escaped, as YouTube sends them.
    assert hit["snippet"]["title"] == "Tears of Steel - Blender Foundation&#39;s fourth Open Movie"
    kinds = await _youtube(http, youtube, "search", part="id", q="blender", maxResults=50)
    assert {i["id"]["kind"] for i in kinds["items"]} == {
        "youtube#video",
        "youtube#channel",
        "youtube#playlist",
    }

    youtube.exhaust_quota()
    resp = await http.get(
        f"{youtube.url}/youtube/v3/videos",
        params={"key": youtube.key, "part": "id", "id": "aqz-KE-bpKQ"},
    )
    assert resp.status_code == 403
    assert resp.json()["error"]["errors"][0]["reason"] == "quotaExceeded"


# --- faults shared by every fake -----------------------------------------------------------


@pytest.mark.parametrize("make", [FakeTautulli, FakeTMDB, FakeYouTube])
async def test_fault_controls_apply_to_these_fakes(
    http: httpx.AsyncClient, make: type[FakeServer]
) -> None:
    fake = make()
    await fake.start()
    try:
        fake.faults.status = 503
        assert (await http.get(f"{fake.url}/anything")).status_code == 503
        fake.faults.clear()
        fake.faults.body = "html"
        resp = await http.get(f"{fake.url}/anything")
        assert resp.headers["Content-Type"].startswith("text/html")
        fake.faults.clear()
        fake.faults.hang = True
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{fake.url}/anything", timeout=httpx.Timeout(5, read=0.2))
    finally:
        await fake.stop()
    with pytest.raises(httpx.ConnectError):
        await http.get(f"{fake.url}/anything")


# --- contracts -----------------------------------------------------------------------------


def _served_routes(fake: FakeServer) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in fake.app().router.routes()
        if route.resource is not None
    }


@pytest.fixture(scope="module")
def tmdb_spec() -> dict[str, Any]:
    return json.loads((_folder(CONTRACTS_ENV) / "tmdb-v3.openapi.json").read_text())


@pytest.fixture(scope="module")
def youtube_discovery() -> dict[str, Any]:
    return json.loads((_folder(CONTRACTS_ENV) / "youtube-v3.discovery.json").read_text())


# One or more requests per route the fake serves, keyed by the spec's path.
TMDB_CALLS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "/3/configuration": [("/3/configuration", {})],
    "/3/search/multi": [
        ("/3/search/multi", {"query": "breaking"}),
        ("/3/search/multi", {"query": "keanu"}),
    ],
    "/3/search/movie": [("/3/search/movie", {"query": "matrix"})],
    "/3/search/tv": [("/3/search/tv", {"query": "the"})],
    "/3/movie/{movie_id}": [
        ("/3/movie/603", {"append_to_response": "external_ids"}),
        ("/3/movie/1290001", {}),
    ],
    "/3/movie/{movie_id}/external_ids": [("/3/movie/603/external_ids", {})],
    "/3/tv/{series_id}": [
        ("/3/tv/1396", {"append_to_response": "external_ids"}),
        ("/3/tv/100088", {}),
    ],
    "/3/tv/{series_id}/external_ids": [
        ("/3/tv/1396/external_ids", {}),
        ("/3/tv/100088/external_ids", {}),
    ],
    "/3/movie/popular": [("/3/movie/popular", {})],
    "/3/tv/popular": [("/3/tv/popular", {})],
    "/3/movie/upcoming": [("/3/movie/upcoming", {})],
    "/3/trending/all/{time_window}": [("/3/trending/all/day", {})],
    "/3/trending/movie/{time_window}": [("/3/trending/movie/week", {})],
    "/3/trending/tv/{time_window}": [("/3/trending/tv/day", {})],
    "/3/trending/person/{time_window}": [("/3/trending/person/week", {})],
}
# Paths whose results mix movies, shows and people: each entry has only its own kind's fields.
TMDB_MIXED = {"/3/search/multi", "/3/trending/all/{time_window}"}
# TMDB answers null for a missing image or id, where its document says string or integer.
TMDB_NULLABLE = {
    "backdrop_path", "poster_path", "profile_path", "logo_path", "still_path",
    "belongs_to_collection", "freebase_mid", "freebase_id", "tvrage_id", "wikidata_id",
    "facebook_id", "instagram_id", "twitter_id",
}  # fmt: skip


def _as_tmdb_serves(schema: Any, name: str = "", *, strict: bool = True) -> Any:
    """TMDB's schema, adjusted where the real service differs from its document.

    The document was generated from example responses, so (1) every property it lists is one the
    real service sends: the test requires them all (except inside lists that mix kinds, and a
    person's ``known_for``); (2) a value the example happened to have whole is typed "integer"
    though TMDB sends decimals (``vote_average``): the test follows the service and allows any
    number; (3) TMDB sends null for absent images and ids: the test allows null there.
    """
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in ("properties", "items", "default")}
    if "properties" in schema:
        out["properties"] = {
            key: _as_tmdb_serves(value, key, strict=strict and key != "known_for")
            for key, value in schema["properties"].items()
        }
        if strict:
            out["required"] = sorted(schema["properties"])
    if "items" in schema:
        out["items"] = _as_tmdb_serves(schema["items"], name, strict=strict)
    if name == "vote_average" and out.get("type") == "integer":
        out["type"] = "number"
    if name in TMDB_NULLABLE and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


async def test_tmdb_fake_matches_the_published_openapi_document(
    http: httpx.AsyncClient, tmdb: FakeTMDB, tmdb_spec: dict[str, Any]
) -> None:
    served = _served_routes(tmdb)
    for method, path in sorted(served):
        assert method.lower() in tmdb_spec["paths"].get(path, {}), f"{method} {path} not in spec"
    assert {path for _, path in served} == set(TMDB_CALLS), "every route needs a checked call"

    for spec_path, calls in TMDB_CALLS.items():
        operation = tmdb_spec["paths"][spec_path]["get"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if spec_path in TMDB_MIXED:
            schema = {**schema, "properties": dict(schema["properties"])}
            results = schema["properties"].pop("results")
            schema = _as_tmdb_serves(schema)
            schema["properties"]["results"] = _as_tmdb_serves(results, strict=False)
        else:
            schema = _as_tmdb_serves(schema)
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for path, params in calls:
            assert set(params) <= declared, f"{spec_path} does not take {set(params) - declared}"
            body = await _tmdb(http, tmdb, path, **params)
            errors = sorted(OAS31Validator(schema).iter_errors(body), key=str)
            assert not errors, f"{path}: " + "; ".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
            )


def _discovery_methods(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in node.get("resources", {}).values():
        yield from resource.get("methods", {}).values()
        yield from _discovery_methods(resource)


def _discovery_to_json_schema(node: Any, loose: frozenset[str] = frozenset()) -> Any:
    """A discovery-document schema as JSON Schema: type, properties, items, $ref and enum.

    Discovery schemas list every field a resource has, so objects allow no others; ``loose``
    names the schemas that get extra fields the real service sends beyond its document.
    """
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    out: dict[str, Any] = {}
    kind = node.get("type")
    if kind in ("string", "integer", "number", "boolean", "array", "object"):
        out["type"] = kind
    if "enum" in node:
        out["enum"] = node["enum"]
    if "items" in node:
        out["items"] = _discovery_to_json_schema(node["items"], loose)
    if "properties" in node:
        out["properties"] = {
            key: _discovery_to_json_schema(value, loose)
            for key, value in node["properties"].items()
        }
        # A resource's "kind" is fixed (e.g. "youtube#video"): the document gives it as default.
        kind_default = node["properties"].get("kind", {}).get("default")
        if kind_default:
            out["properties"]["kind"] = {"const": kind_default}
        out["additionalProperties"] = node.get("id") in loose
    if "additionalProperties" in node:
        out["additionalProperties"] = _discovery_to_json_schema(node["additionalProperties"], loose)
    return out


# Search snippets carry ``publishTime``, which the discovery document does not list: the test
# follows the real service and lets that schema have it.
YOUTUBE_EXTRA = {"SearchResultSnippet": {"publishTime": {"type": "string"}}}
YOUTUBE_CALLS: dict[str, list[dict[str, str]]] = {
    "videos": [
        {"part": "snippet,contentDetails,statistics,status,player", "id": "aqz-KE-bpKQ"},
        {"part": "id,snippet", "chart": "mostPopular", "maxResults": "2"},
    ],
    "playlists": [{"part": "snippet,contentDetails,status,player", "id": "PL6B3937A5D230E335"}],
    "playlistItems": [
        {"part": "snippet,contentDetails,status", "playlistId": "PL6B3937A5D230E335"},
        {"part": "snippet", "playlistId": "UUSMOQeBJ2RAnuFungnQOxLg", "maxResults": "1"},
    ],
    "channels": [
        {"part": "snippet,contentDetails,statistics,status", "id": "UCSMOQeBJ2RAnuFungnQOxLg"},
        {"part": "id", "forHandle": "@nobody"},
    ],
    "search": [{"part": "snippet", "q": "blender", "maxResults": "10"}],
}


async def test_youtube_fake_matches_the_discovery_document(
    http: httpx.AsyncClient, youtube: FakeYouTube, youtube_discovery: dict[str, Any]
) -> None:
    base = youtube_discovery["rootUrl"] + youtube_discovery["servicePath"]
    methods = {
        (m["httpMethod"], urlsplit(urljoin(base, m["path"])).path): m
        for m in _discovery_methods(youtube_discovery)
    }
    served = _served_routes(youtube)
    for route in sorted(served):
        assert route in methods, f"{route} is not in the discovery document"
    assert {path.rsplit("/", 1)[1] for _, path in served} == set(YOUTUBE_CALLS)

    schemas = {
        name: _discovery_to_json_schema(schema, frozenset(YOUTUBE_EXTRA))
        for name, schema in youtube_discovery["schemas"].items()
    }
    for name, extra in YOUTUBE_EXTRA.items():
        schemas[name]["properties"].update(extra)
    for (_, path), spec in sorted((r, methods[r]) for r in served):
        resource = path.rsplit("/", 1)[1]
        # The fake refuses a call without the parameters the document marks required.
        required = {n for n, p in spec["parameters"].items() if p.get("required")}
        assert required == {"part"}
        resp = await http.get(f"{youtube.url}{path}", params={"key": youtube.key})
        assert resp.status_code == 400 and resp.json()["error"]["errors"][0]["location"] == "part"

        validator = Draft202012Validator({"$defs": schemas, **schemas[spec["response"]["$ref"]]})
        for params in YOUTUBE_CALLS[resource]:
            assert set(params) <= set(spec["parameters"]), params
            body = await _youtube(http, youtube, resource, **params)
            errors = sorted(validator.iter_errors(body), key=str)
            assert not errors, f"{resource} {params}: " + "; ".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
            )


# What tautulli-api.md lists for each command, as JSON Schema: the fields a client may rely on,
# with the types the summary gives (strings where Tautulli sends strings).
def _object(fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(fields), "properties": fields}


def _each(names: str, schema: Any = None) -> dict[str, Any]:
    """The same schema (by default: anything) for each of the space-separated ``names``."""
    return dict.fromkeys(names.split(), {} if schema is None else schema)


ANY: dict[str, Any] = {}
STR = {"type": "string"}
INT = {"type": "integer"}
SESSION = _object(
    _each(
        "rating_key parent_rating_key grandparent_rating_key title parent_title "
        "grandparent_title full_title year media_index parent_media_index thumb parent_thumb "
        "grandparent_thumb art username friendly_name user_thumb player product platform "
        "device ip_address location local relayed secure state view_offset duration "
        "quality_profile video_resolution video_full_resolution video_decision audio_decision "
        "section_id library_name user"
    )
    | {
        "session_key": STR,
        "session_id": STR,
        "media_type": {"enum": ["movie", "episode", "track", "clip", "photo", "live"]},
        "user_id": INT,
        "progress_percent": STR,
        "bandwidth": STR,
        "transcode_decision": {"enum": ["direct play", "copy", "transcode"]},
        "state": {"enum": ["playing", "paused", "buffering"]},
        "location": {"enum": ["lan", "wan"]},
    }
)
HISTORY_ROW = _object(
    _each(
        "row_id reference_id rating_key parent_rating_key grandparent_rating_key media_type "
        "guid date started stopped paused_counter play_duration user friendly_name user_id "
        "full_title title parent_title grandparent_title original_title year media_index "
        "parent_media_index thumb originally_available_at platform product player ip_address "
        "location secure relayed percent_complete transcode_decision live group_count "
        "group_ids session_key state"
    )
    | {"watched_status": {"enum": [0, 0.5, 1]}, "date": INT, "started": INT, "stopped": INT}
)
MEDIA_STAT_ROW = _object(
    _each(
        "title year total_plays total_duration users_watched rating_key "
        "grandparent_rating_key thumb grandparent_thumb art section_id media_type "
        "content_rating last_play guid row_id"
    )
)
STAT_ROWS = {
    "top_movies": MEDIA_STAT_ROW,
    "popular_movies": MEDIA_STAT_ROW,
    "top_tv": MEDIA_STAT_ROW,
    "popular_tv": MEDIA_STAT_ROW,
    "top_users": _object(_each("user user_id friendly_name user_thumb")),
    "top_platforms": _object({"platform": ANY, "platform_name": ANY}),
    "top_libraries": _object({"section_name": ANY, "section_type": ANY}),
    "most_concurrent": _object(_each("title count started stopped")),
}
TAUTULLI_DATA = {
    "get_activity": _object(
        {
            "stream_count": STR,
            "stream_count_direct_play": INT,
            "stream_count_direct_stream": INT,
            "stream_count_transcode": INT,
            "total_bandwidth": INT,
            "lan_bandwidth": INT,
            "wan_bandwidth": INT,
            "sessions": {"type": "array", "minItems": 1, "items": SESSION},
        }
    ),
    "get_history": _object(
        {
            "draw": INT,
            "recordsTotal": INT,
            "recordsFiltered": INT,
            "total_duration": STR,
            "filter_duration": STR,
            "data": {"type": "array", "minItems": 1, "items": HISTORY_ROW},
        }
    ),
    "get_home_stats": {
        "type": "array",
        "items": {
            **_object({"stat_id": STR, "stat_title": STR, "rows": {"type": "array"}}),
            "allOf": [
                {
                    "if": {"properties": {"stat_id": {"const": stat}}},
                    "then": {"properties": {"rows": {"items": rows}}},
                }
                for stat, rows in STAT_ROWS.items()
            ],
        },
    },
    "get_libraries": {
        "type": "array",
        "items": _object(
            _each("thumb art count parent_count child_count")
            | {
                "section_id": STR,
                "section_name": STR,
                "section_type": {"enum": ["movie", "show", "artist", "photo"]},
                "is_active": INT,
            }
        ),
    },
    "get_server_info": _object(
        _each("pms_identifier pms_name pms_ip pms_url pms_version")
        | {"pms_platform": STR, "pms_port": INT}
        | _each("pms_ssl pms_is_remote pms_plexpass pms_url_manual", {"enum": [0, 1]})
    ),
    "get_tautulli_info": _object(
        _each("tautulli_version tautulli_branch tautulli_commit", STR)
        | {"tautulli_install_type": STR, "tautulli_python_version": STR}
    ),
    "server_status": {
        "type": "object",
        "properties": {"connected": {"type": "boolean"}},
        "required": ["connected"],
        "additionalProperties": False,
    },
    "status": {"const": {}},
    "arnold": {"type": "string", "minLength": 1},
}
STAT_IDS = [
    "top_movies", "popular_movies", "top_tv", "popular_tv", "top_music", "popular_music",
    "last_watched", "top_libraries", "top_users", "top_platforms", "most_concurrent",
]  # fmt: skip


def _envelope_schema(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["response"],
        "additionalProperties": False,
        "properties": {
            "response": {
                "type": "object",
                "required": ["result", "message", "data"],
                "additionalProperties": False,
                "properties": {
                    "result": {"const": "success"},
                    "message": {"type": ["string", "null"]},
                    "data": data,
                },
            }
        },
    }


def _schema_of_recorded_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The shape of recorded rows: the same keys, each with the JSON types the rows have."""
    names = {type(None): "null", bool: "boolean", int: "integer", str: "string"}
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            seen.setdefault(key, set()).add(names[type(value)])
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": sorted(seen),
            "additionalProperties": False,
            # A field the recording only has null in may hold a value on another server.
            "properties": {
                key: {"type": sorted(types)} if types != {"null"} else {}
                for key, types in seen.items()
            },
        },
    }


async def test_tautulli_fake_matches_the_summary_and_the_recordings(
    http: httpx.AsyncClient, tautulli: FakeTautulli
) -> None:
    contracts, recorded = _folder(CONTRACTS_ENV), _folder(RECORDED_ENV)
    summary = (contracts / "tautulli-api.md").read_text()
    for cmd in TAUTULLI_DATA:
        assert f"`{cmd}`" in summary, f"{cmd} is not in the Tautulli summary"
    for stat_id in STAT_IDS:
        assert f"`{stat_id}`" in summary

    for cmd, data_schema in TAUTULLI_DATA.items():
        resp = await http.get(
            f"{tautulli.url}/api/v2", params={"apikey": tautulli.apikey, "cmd": cmd}
        )
        assert resp.status_code == 200, cmd
        assert resp.headers["Content-Type"].startswith("application/json")
        errors = list(Draft202012Validator(_envelope_schema(data_schema)).iter_errors(resp.json()))
        assert not errors, f"{cmd}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
        )
        if cmd == "get_home_stats":
            assert [b["stat_id"] for b in resp.json()["response"]["data"]] == STAT_IDS

    # get_users: the same keys, with the same types, as a real server's answer.
    users = json.loads((recorded / "tautulli" / "tautulli-get_users.json").read_text())
    resp = await http.get(
        f"{tautulli.url}/api/v2", params={"apikey": tautulli.apikey, "cmd": "get_users"}
    )
    ours = resp.json()
    assert ours.keys() == users.keys() and ours["response"].keys() == users["response"].keys()
    assert {k: v for k, v in ours["response"].items() if k != "data"} == {
        k: v for k, v in users["response"].items() if k != "data"
    }
    validator = Draft202012Validator(_schema_of_recorded_rows(users["response"]["data"]))
    errors = list(validator.iter_errors(ours["response"]["data"]))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    # Like the recording, a "Local" user with id 0 comes first.
    assert ours["response"]["data"][0]["user_id"] == 0

    # A command with nothing to report answers the recorded minimal success envelope.
    minimal = json.loads((recorded / "tautulli" / "tautulli-test_command.json").read_text())
    resp = await http.get(
        f"{tautulli.url}/api/v2",
        params={"apikey": tautulli.apikey, "cmd": "get_activity", "session_key": "99999"},
    )
    assert (resp.status_code, resp.json()) == (200, minimal)
