"""The fake Plex Media Server over real HTTP: the calls MediaNest makes, answered in XML by
default and in JSON on request, as a real server answers them; then checked against the
published Plex specs and against responses recorded from real servers.

The specs and recordings are read from the folders named by MEDIANEST_TEST_CONTRACTS_DIR and
MEDIANEST_TEST_RECORDED_DIR; those tests skip without them (and fail in CI).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from conftest import require
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from medianest.testing import FakePlexMediaServer
from medianest.testing.pms import OTHER_VIDEOS

TOKEN = "owner-token-0123456789"
_DEFAULT = object()


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def container(self) -> dict[str, Any]:
        container: dict[str, Any] = self.json["MediaContainer"]
        return container


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def pms() -> AsyncIterator[FakePlexMediaServer]:
    fake = FakePlexMediaServer(tokens={TOKEN})
    await fake.start()
    yield fake
    await fake.stop()


async def call(
    http: aiohttp.ClientSession,
    pms: FakePlexMediaServer,
    path: str,
    *,
    as_json: bool = False,
    token: Any = _DEFAULT,
    in_query: bool = False,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    sent = dict(headers or {})
    query = dict(params or {})
    key = TOKEN if token is _DEFAULT else token
    if key is not None:
        if in_query:
            query["X-Plex-Token"] = key
        else:
            sent["X-Plex-Token"] = key
    if as_json:
        sent["Accept"] = "application/json"
    async with http.get(pms.url + path, params=query, headers=sent) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.read())


async def xml(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer, path: str, **params: Any
) -> Any:
    answer = await call(http, pms, path, params={k: str(v) for k, v in params.items()})
    assert answer.status == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/xml")
    return answer.xml


async def js(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer, path: str, **params: Any
) -> Any:
    answer = await call(
        http, pms, path, as_json=True, params={k: str(v) for k, v in params.items()}
    )
    assert answer.status == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    return answer.container


def guids(element: ET.Element) -> set[str]:
    return {g.attrib["id"] for g in element.iter("Guid")}


# --- behaviour -----------------------------------------------------------------------------------


async def test_answers_xml_by_default_and_the_same_libraries_in_json_when_asked(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    root = await xml(http, pms, "/library/sections")
    assert root.tag == "MediaContainer" and root.attrib["size"] == "3"
    from_xml = [
        (
            d.attrib["key"],
            d.attrib["title"],
            d.attrib["type"],
            d.attrib["agent"],
            d.attrib["scanner"],
            d.attrib["language"],
            d.attrib["uuid"],
            [loc.attrib["path"] for loc in d.iter("Location")],
        )
        for d in root.iter("Directory")
    ]
    assert [row[:6] for row in from_xml] == [
        ("1", "Movies", "movie", "tv.plex.agents.movie", "Plex Movie", "en-US"),
        ("2", "TV Shows", "show", "tv.plex.agents.series", "Plex TV Series", "en-US"),
        ("3", "Music", "artist", "tv.plex.agents.music", "Plex Music", "en-US"),
    ]
    assert [row[7] for row in from_xml] == [["/data/movies"], ["/data/tv"], ["/data/music"]]

    container = await js(http, pms, "/library/sections")
    from_json = [
        (
            d["key"],
            d["title"],
            d["type"],
            d["agent"],
            d["scanner"],
            d["language"],
            d["uuid"],
            [loc["path"] for loc in d["Location"]],
        )
        for d in container["Directory"]
    ]
    assert from_json == from_xml
    # Booleans are 1/0 in XML and true/false in JSON, as Plex writes them.
    assert root.find("Directory").attrib["refreshing"] == "0"
    assert container["Directory"][0]["refreshing"] is False


async def test_a_missing_or_wrong_token_is_refused_on_every_path_but_identity(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    matrix = pms.find("The Matrix")
    films = pms.add_collection("Films", [matrix])
    concrete = {
        "{key}": "1",
        "{rating_key}": matrix.rating_key,
        "{collection_id}": films.rating_key,
    }
    paths = set()
    for route in pms.app().router.routes():
        if route.method == "GET" and route.resource is not None:
            path = route.resource.canonical
            for placeholder, value in concrete.items():
                path = path.replace(placeholder, value)
            paths.add(path)
    assert "/status/sessions" in paths and "/library/sections/1/all" in paths
    required = {
        "/photo/:/transcode": {"url": matrix.thumb, "width": "10", "height": "10"},
        "/hubs/search": {"query": "matrix"},
    }
    for path in sorted(paths):
        params = required.get(path)
        good = await call(http, pms, path, params=params)
        assert good.status == 200, path
        by_query = await call(http, pms, path, params=params, in_query=True)
        assert by_query.status == 200, path
        if path == "/identity":
            assert (await call(http, pms, path, token=None)).status == 200
            continue
        for token in (None, "not-" + TOKEN):
            refused = await call(http, pms, path, params=params, token=token, as_json=True)
            assert refused.status == 401, path
            assert refused.headers["Content-Type"].startswith("text/html")
            assert "401 Unauthorized" in refused.text
    assert pms.refreshes == [("1", None), ("1", None)]  # only the accepted refreshes count


async def test_a_library_lists_its_items_with_plex_and_external_ids(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    movies = await xml(http, pms, "/library/sections/1/all", includeGuids=1)
    assert movies.attrib["librarySectionTitle"] == "Movies"
    by_title = {v.attrib["title"]: v for v in movies.iter("Video")}
    assert {"The Matrix", "Inception", "Interstellar"} <= set(by_title)
    matrix = by_title["The Matrix"]
    assert matrix.attrib["type"] == "movie" and matrix.attrib["year"] == "1999"
    assert matrix.attrib["ratingKey"] == pms.find("The Matrix").rating_key
    assert re.fullmatch(r"plex://movie/[0-9a-f]{24}", matrix.attrib["guid"])
    assert guids(matrix) == {"imdb://tt0133093", "tmdb://603"}
    assert int(matrix.attrib["addedAt"]) > 0
    assert matrix.attrib["thumb"].startswith(f"/library/metadata/{matrix.attrib['ratingKey']}/")
    # Sorted by title without its article, as Plex sorts.
    assert [v.attrib["title"] for v in movies.iter("Video")][:3] == [
        "Arrival",
        "The Dark Knight",
        "Inception",
    ]
    # The external ids come only with includeGuids=1, as on a real server.
    plain = await xml(http, pms, "/library/sections/1/all")
    assert all(not guids(v) for v in plain.iter("Video"))

    shows = await js(http, pms, "/library/sections/2/all", includeGuids=1)
    breaking_bad = next(m for m in shows["Metadata"] if m["title"] == "Breaking Bad")
    assert {g["id"] for g in breaking_bad["Guid"]} >= {"tvdb://81189"}
    assert breaking_bad["type"] == "show" and breaking_bad["guid"].startswith("plex://show/")
    assert (breaking_bad["childCount"], breaking_bad["leafCount"]) == (2, 20)

    episodes = await js(http, pms, "/library/sections/2/all", type=4)
    assert episodes["size"] == 7 + 13 + 6 + 22 + 8
    assert {m["type"] for m in episodes["Metadata"]} == {"episode"}
    found = await js(http, pms, "/library/sections/1/all", title="matrix")
    assert [m["title"] for m in found["Metadata"]] == ["The Matrix"]
    newest = await js(http, pms, "/library/sections/1/all", sort="addedAt:desc")
    added = [m["addedAt"] for m in newest["Metadata"]]
    assert added == sorted(added, reverse=True)
    assert (await call(http, pms, "/library/sections/9/all")).status == 404


async def test_paging_with_container_start_and_size_as_parameters_or_headers(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    everything = await js(http, pms, "/library/sections/1/all")
    titles = [m["title"] for m in everything["Metadata"]]
    assert len(titles) == 5
    paged: list[str] = []
    for start in range(0, 6, 2):
        page = await call(
            http,
            pms,
            "/library/sections/1/all",
            as_json=True,
            params={"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": "2"},
        )
        container = page.container
        assert (container["offset"], container["totalSize"]) == (start, 5)
        assert container["size"] == len(container.get("Metadata", [])) == min(2, 5 - start)
        assert page.headers["X-Plex-Container-Total-Size"] == "5"
        assert page.headers["X-Plex-Container-Start"] == str(start)
        paged += [m["title"] for m in container.get("Metadata", [])]
    assert paged == titles

    by_header = await call(
        http,
        pms,
        "/library/recentlyAdded",
        headers={"X-Plex-Container-Start": "1", "X-Plex-Container-Size": "3"},
    )
    root = by_header.xml
    all_recent = await xml(http, pms, "/library/recentlyAdded")
    assert [e.attrib["ratingKey"] for e in root] == [
        e.attrib["ratingKey"] for e in list(all_recent)[1:4]
    ]
    assert root.attrib["totalSize"] == all_recent.attrib["size"]
    past_the_end = await js(http, pms, "/library/recentlyAdded", **{"X-Plex-Container-Start": 99})
    assert past_the_end["size"] == 0 and "Metadata" not in past_the_end
    bad = await call(http, pms, "/library/recentlyAdded", params={"X-Plex-Container-Size": "x"})
    assert bad.status == 400


async def test_metadata_has_the_guids_and_children_list_seasons_and_episodes(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    matrix = pms.find("The Matrix")
    detail = await xml(http, pms, f"/library/metadata/{matrix.rating_key}")
    (video,) = detail.iter("Video")
    assert guids(video) == {"imdb://tt0133093", "tmdb://603"}
    assert video.attrib["librarySectionID"] == "1"
    genre = video.find("Genre")
    assert genre is not None and genre.attrib["tag"] == "Action" and genre.attrib["id"]
    asked = await xml(http, pms, f"/library/metadata/{matrix.rating_key}", includeGuids=1)
    assert guids(asked) == guids(video)

    show = pms.find("Breaking Bad")
    shown = await js(http, pms, f"/library/metadata/{show.rating_key}")
    (entry,) = shown["Metadata"]
    assert {g["id"] for g in entry["Guid"]} == {"imdb://tt0903747", "tmdb://1396", "tvdb://81189"}
    children = await js(http, pms, f"/library/metadata/{show.rating_key}/children")
    # Plex lists "All episodes" first, as a Directory of its own, then the seasons.
    assert [d["title"] for d in children["Directory"]] == ["All episodes"]
    seasons = [(m["type"], m["index"], m["leafCount"]) for m in children["Metadata"]]
    assert seasons == [("season", 1, 7), ("season", 2, 13)]

    season_one = children["Metadata"][0]
    episodes = await xml(http, pms, f"/library/metadata/{season_one['ratingKey']}/children")
    listed = [(v.attrib["index"], v.attrib["title"]) for v in episodes.iter("Video")]
    assert listed[0] == ("1", "Pilot") and len(listed) == 7
    assert {v.attrib["grandparentTitle"] for v in episodes.iter("Video")} == {"Breaking Bad"}
    assert (await call(http, pms, "/library/metadata/999999")).status == 404
    assert (await call(http, pms, "/library/metadata/999999/children")).status == 404


async def test_recently_added_mixes_films_seasons_and_albums_newest_first(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    root = await xml(http, pms, "/library/recentlyAdded")
    kinds = {(e.tag, e.attrib["type"]) for e in root}
    assert kinds == {("Video", "movie"), ("Directory", "season"), ("Directory", "album")}
    added = [int(e.attrib["addedAt"]) for e in root]
    assert added == sorted(added, reverse=True)
    seasons = [e for e in root if e.attrib["type"] == "season"]
    assert {(s.attrib["parentTitle"], s.attrib["index"]) for s in seasons} >= {
        ("Breaking Bad", "1"),
        ("Breaking Bad", "2"),
    }
    only_films = await js(http, pms, "/library/recentlyAdded", type=1)
    assert {m["type"] for m in only_films["Metadata"]} == {"movie"}
    tv = await js(http, pms, "/library/recentlyAdded", sectionID=2)
    assert {m["librarySectionTitle"] for m in tv["Metadata"]} == {"TV Shows"}


async def test_an_added_film_season_or_show_appears_in_recently_added_and_its_library(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    dune = pms.add_movie("Dune", 2021, tmdb_id=438631, imdb_id="tt1160419")
    recent = await xml(http, pms, "/library/recentlyAdded")
    first = recent[0]
    assert (first.tag, first.attrib["title"], first.attrib["ratingKey"]) == (
        "Video",
        "Dune",
        dune.rating_key,
    )
    movies = await xml(http, pms, "/library/sections/1/all", includeGuids=1)
    listed = {v.attrib["title"]: guids(v) for v in movies.iter("Video")}
    assert listed["Dune"] == {"imdb://tt1160419", "tmdb://438631"}

    show = pms.find("Breaking Bad")
    pms.add_season(show, 3, 13)
    recent = await js(http, pms, "/library/recentlyAdded")
    newest = recent["Metadata"][0]
    assert (newest["type"], newest["parentTitle"], newest["index"], newest["leafCount"]) == (
        "season",
        "Breaking Bad",
        3,
        13,
    )
    shows = await js(http, pms, "/library/sections/2/all")
    entry = next(m for m in shows["Metadata"] if m["title"] == "Breaking Bad")
    assert (entry["childCount"], entry["leafCount"]) == (3, 33)
    children = await js(http, pms, f"/library/metadata/{show.rating_key}/children")
    assert [m["index"] for m in children["Metadata"]] == [1, 2, 3]

    pms.add_show("Severance", 2022, tvdb_id=371980, tmdb_id=95396, seasons={1: 9})
    shows = await js(http, pms, "/library/sections/2/all", includeGuids=1)
    severance = next(m for m in shows["Metadata"] if m["title"] == "Severance")
    assert {"id": "tvdb://371980"} in severance["Guid"]
    recent = await js(http, pms, "/library/recentlyAdded", **{"X-Plex-Container-Size": 1})
    assert recent["Metadata"][0]["parentTitle"] == "Severance"


async def test_an_empty_server_grows_the_library_an_item_needs(
    http: aiohttp.ClientSession,
) -> None:
    empty = FakePlexMediaServer(tokens={TOKEN}, seed=False)
    async with empty:
        assert (await js(http, empty, "/library/sections"))["size"] == 0
        film = empty.add_movie("Arrival", 2016, tmdb_id=329865)
        sections = await js(http, empty, "/library/sections")
        assert [(d["key"], d["title"], d["type"]) for d in sections["Directory"]] == [
            ("1", "Movies", "movie")
        ]
        listed = await js(http, empty, "/library/sections/1/all")
        assert [m["ratingKey"] for m in listed["Metadata"]] == [film.rating_key]
        empty.remove(film)
        assert (await js(http, empty, "/library/sections/1/all"))["size"] == 0


async def test_search_answers_one_hub_per_kind_with_the_matches(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    found = await xml(http, pms, "/hubs/search", query="matrix", limit=10)
    hubs = {h.attrib["type"]: h for h in found.iter("Hub")}
    assert {"movie", "show"} <= set(hubs)
    assert [v.attrib["title"] for v in hubs["movie"]] == ["The Matrix"]
    assert hubs["movie"].attrib["size"] == "1" and len(hubs["show"]) == 0

    shows = await js(http, pms, "/hubs/search", query="Breaking")
    by_type = {h["type"]: h for h in shows["Hub"]}
    (result,) = by_type["show"]["Metadata"]
    assert (result["title"], result["type"], result["year"]) == ("Breaking Bad", "show", 2008)
    assert result["librarySectionTitle"] == "TV Shows"

    limited = await js(http, pms, "/hubs/search", query="the", limit=1)
    films = next(h for h in limited["Hub"] if h["type"] == "movie")
    assert films["size"] == 1 and films["more"] is True
    missing = await call(http, pms, "/hubs/search")
    assert missing.status == 400


async def test_sessions_show_who_plays_what_how_far_and_whether_it_transcodes(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    assert (await xml(http, pms, "/status/sessions")).attrib["size"] == "0"
    film = pms.start_session(
        pms.find("Inception"), user="alice", progress=0.25, player="Living Room", platform="Roku"
    )
    episode = pms.start_session(
        pms.find("Gray Matter"), user="bob", progress=0.5, transcode=True, location="wan"
    )
    root = await xml(http, pms, "/status/sessions")
    assert root.attrib["size"] == "2"
    videos = {v.find("User").attrib["title"]: v for v in root.iter("Video")}
    direct, transcoded = videos["alice"], videos["bob"]

    assert (direct.attrib["type"], direct.attrib["title"]) == ("movie", "Inception")
    progress = int(direct.attrib["viewOffset"]) / int(direct.attrib["duration"])
    assert progress == pytest.approx(0.25, abs=0.01)
    player = direct.find("Player")
    assert player is not None
    assert (player.attrib["state"], player.attrib["title"], player.attrib["platform"]) == (
        "playing",
        "Living Room",
        "Roku",
    )
    session = direct.find("Session")
    assert session is not None and session.attrib["location"] == "lan"
    assert int(session.attrib["bandwidth"]) > 0
    assert direct.find("TranscodeSession") is None
    assert {p.attrib["decision"] for p in direct.iter("Part")} == {"directplay"}

    assert (transcoded.attrib["type"], transcoded.attrib["grandparentTitle"]) == (
        "episode",
        "Breaking Bad",
    )
    assert (transcoded.attrib["parentIndex"], transcoded.attrib["index"]) == ("1", "5")
    transcode = transcoded.find("TranscodeSession")
    assert transcode is not None and transcode.attrib["videoDecision"] == "transcode"
    assert {p.attrib["decision"] for p in transcoded.iter("Part")} == {"transcode"}
    assert transcoded.find("Player").attrib["local"] == "0"

    film.state = "paused"
    film.view_offset = (pms.find("Inception").duration or 0) // 2
    container = await js(http, pms, "/status/sessions")
    by_user = {m["User"]["title"]: m for m in container["Metadata"]}
    assert by_user["alice"]["Player"]["state"] == "paused"
    assert by_user["alice"]["viewOffset"] / by_user["alice"]["duration"] == pytest.approx(0.5)
    assert "TranscodeSession" not in by_user["alice"]
    assert by_user["bob"]["TranscodeSession"]["throttled"] is False
    assert by_user["bob"]["Session"]["location"] == "wan"

    pms.stop_session(episode)
    container = await js(http, pms, "/status/sessions")
    assert [m["User"]["title"] for m in container["Metadata"]] == ["alice"]


async def test_a_refresh_answers_an_empty_200_and_is_recorded(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    folder = "/data/tv/Breaking Bad (2008)"
    answer = await call(http, pms, "/library/sections/2/refresh", params={"path": folder})
    assert (answer.status, answer.body) == (200, b"")
    whole = await call(http, pms, "/library/sections/1/refresh", params={"force": "1"})
    assert whole.status == 200
    unknown = await call(http, pms, "/library/sections/42/refresh")
    assert unknown.status == 404
    refused = await call(http, pms, "/library/sections/1/refresh", token="wrong")
    assert refused.status == 401
    assert pms.refreshes == [("2", folder), ("1", None)]


async def send(
    http: aiohttp.ClientSession,
    pms: FakePlexMediaServer,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    *,
    token: str | None = TOKEN,
) -> Answer:
    """Any method, in JSON."""
    headers = {"Accept": "application/json"} | ({"X-Plex-Token": token} if token else {})
    async with http.request(method, pms.url + path, params=params, headers=headers) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.read())


def videos_on_disk(root: Path) -> FakePlexMediaServer:
    """An empty server with an "Other Videos" library whose folder is ``root``, holding two
    videos, a text file and a hidden folder."""
    (root / "Trip").mkdir(parents=True)
    (root / "Trip" / "01 - Beach.mp4").write_bytes(b"video")
    (root / "Trip" / "02 - Hills.mkv").write_bytes(b"video")
    (root / "Trip" / "01 - Beach.nfo").write_text("<movie />")
    (root / ".incoming" / "x").mkdir(parents=True)
    (root / ".incoming" / "x" / "partial.mp4").write_bytes(b"vid")
    pms = FakePlexMediaServer(tokens={TOKEN}, seed=False)
    pms.add_library(
        "Other Videos", "movie", [str(root)], agent=OTHER_VIDEOS[0], scanner=OTHER_VIDEOS[1]
    )
    return pms


async def test_a_refresh_scans_the_folder_on_disk_and_adds_a_film_per_new_video(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pms = videos_on_disk(tmp_path)
    async with pms:
        folder = str(tmp_path / "Trip")
        answer = await call(http, pms, "/library/sections/1/refresh", params={"path": folder})
        assert (answer.status, answer.body) == (200, b"")
        listed = await js(http, pms, "/library/sections/1/all", sort="addedAt:desc")
        files = sorted(m["Media"][0]["Part"][0]["file"] for m in listed["Metadata"])
        assert files == [f"{folder}/01 - Beach.mp4", f"{folder}/02 - Hills.mkv"]
        assert {m["title"] for m in listed["Metadata"]} == {"01 - Beach", "02 - Hills"}
        # A second scan adds only what is new.
        (tmp_path / "Trip" / "03 - Lake.mp4").write_bytes(b"video")
        await call(http, pms, "/library/sections/1/refresh", params={"path": folder})
        await call(http, pms, "/library/sections/1/refresh")
        titles = [m["title"] for m in (await js(http, pms, "/library/sections/1/all"))["Metadata"]]
        assert sorted(titles) == ["01 - Beach", "02 - Hills", "03 - Lake"]
        section = (await js(http, pms, "/library/sections"))["Directory"][0]
        assert (section["agent"], section["scanner"]) == OTHER_VIDEOS


async def test_with_a_scan_delay_the_films_appear_after_the_answer(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pms = videos_on_disk(tmp_path)
    pms.scan_delay = 0.5
    async with pms:
        await call(http, pms, "/library/sections/1/refresh", params={"path": str(tmp_path)})
        assert (await js(http, pms, "/library/sections/1/all"))["size"] == 0
        await asyncio.sleep(1.0)
        assert (await js(http, pms, "/library/sections/1/all"))["size"] == 2


def _uri(pms: FakePlexMediaServer, *keys: str, machine: str | None = None) -> str:
    keys_text = ",".join(keys)
    return (
        f"server://{machine or pms.machine_id}/com.plexapp.plugins.library"
        f"/library/metadata/{keys_text}"
    )


async def test_collections_are_made_listed_and_filled_by_uri(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pms = videos_on_disk(tmp_path)
    async with pms:
        await call(http, pms, "/library/sections/1/refresh")
        beach, hills = pms.find("01 - Beach"), pms.find("02 - Hills")
        made = await send(
            http,
            pms,
            "POST",
            "/library/collections",
            {
                "type": "1",
                "title": "Trip",
                "smart": "0",
                "sectionId": "1",
                "uri": _uri(pms, beach.rating_key),
            },
        )
        assert made.status == 200, made.text
        (collection,) = made.container["Metadata"]
        assert (collection["type"], collection["title"], collection["subtype"]) == (
            "collection",
            "Trip",
            "movie",
        )
        assert collection["childCount"] == 1
        key = collection["ratingKey"]
        listed = (await send(http, pms, "GET", "/library/sections/1/collections")).container
        assert [(c["ratingKey"], c["title"]) for c in listed["Metadata"]] == [(key, "Trip")]

        both = _uri(pms, beach.rating_key, hills.rating_key)
        added = await send(http, pms, "PUT", f"/library/collections/{key}/items", {"uri": both})
        assert added.status == 200 and added.container["Metadata"][0]["childCount"] == 2
        items = (await send(http, pms, "GET", f"/library/collections/{key}/items")).container
        assert [m["title"] for m in items["Metadata"]] == ["01 - Beach", "02 - Hills"]
        # The items carry the collection as a tag, as in Plex.
        detail = await js(http, pms, f"/library/metadata/{hills.rating_key}")
        assert [c["tag"] for c in detail["Metadata"][0]["Collection"]] == ["Trip"]
        assert pms.collection("Trip").items == [beach, hills]
        assert [(m, p) for m, p, _ in pms.collection_requests] == [
            ("POST", "/library/collections"),
            ("GET", "/library/sections/1/collections"),
            ("PUT", f"/library/collections/{key}/items"),
            ("GET", f"/library/collections/{key}/items"),
        ]


async def test_collection_requests_plex_would_refuse_are_refused(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pms = videos_on_disk(tmp_path)
    async with pms:
        await call(http, pms, "/library/sections/1/refresh")
        beach = pms.find("01 - Beach").rating_key
        good = {
            "type": "1",
            "title": "Trip",
            "smart": "0",
            "sectionId": "1",
            "uri": _uri(pms, beach),
        }
        refused = [
            good | {"sectionId": "9"},
            {k: v for k, v in good.items() if k != "sectionId"},
            good | {"title": " "},
            good | {"uri": _uri(pms, beach, machine="another-server")},
            good | {"uri": _uri(pms, "99999")},
            good | {"uri": "library://nowhere"},
            good | {"type": "4"},
            good | {"smart": "1", "uri": ""},
        ]
        for params in refused:
            answer = await send(http, pms, "POST", "/library/collections", params)
            assert answer.status == 400, params
        assert (
            await send(http, pms, "POST", "/library/collections", good, token=None)
        ).status == 401
        assert (
            await send(http, pms, "PUT", "/library/collections/999/items", {"uri": good["uri"]})
        ).status == 404
        assert (await send(http, pms, "GET", "/library/collections/999/items")).status == 404
        assert (await send(http, pms, "GET", "/library/sections/9/collections")).status == 404
        assert pms.collections == {}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:2] == b"\xff\xd8"
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
        if marker == 0xC0:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no frame header")


async def test_posters_come_back_as_images_of_the_asked_size(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    matrix = pms.find("The Matrix")
    params = {"url": matrix.thumb, "width": "200", "height": "300"}
    jpeg = await call(http, pms, "/photo/:/transcode", params=params)
    assert jpeg.status == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
    assert _jpeg_size(jpeg.body) == (200, 300)
    png = await call(http, pms, "/photo/:/transcode", params=params | {"format": "png"})
    assert png.headers["Content-Type"] == "image/png" and png.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png.body[16:24]) == (200, 300)
    assert (await call(http, pms, "/photo/:/transcode", params={"width": "9"})).status == 400
    thumb = await call(http, pms, f"/library/metadata/{matrix.rating_key}/thumb")
    assert thumb.headers["Content-Type"] == "image/jpeg" and _jpeg_size(thumb.body) == (300, 450)
    assert (await call(http, pms, "/library/metadata/999999/thumb")).status == 404


async def test_the_base_faults_apply_to_the_library_calls(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    pms.faults.status = 503
    assert (await call(http, pms, "/library/sections/1/all")).status == 503
    pms.faults.clear()
    pms.faults.body = "truncated"
    broken = await call(http, pms, "/status/sessions", as_json=True)
    with pytest.raises(json.JSONDecodeError):
        _ = broken.json
    pms.faults.clear()
    assert (await call(http, pms, "/status/sessions")).status == 200
    assert pms.calls["GET /library/sections/1/all"] == 1


# --- contract: the published specs ---------------------------------------------------------------

PRIMARY = "plex.openapi.yaml"
NEWER = "plex-pms-2026.openapi.yaml"  # used only where the primary file says nothing
NEWER_URI = "urn:plex-pms-2026"
METHODS = ("get", "post", "put", "delete", "patch")

# The routes the primary file lacks and the newer file has: the collections. The newer file
# models the library refresh as POST; real servers (and the primary file) take GET, which the
# fake follows.
ONLY_IN_NEWER: set[tuple[str, str]] = {
    ("GET", "/library/sections/{}/collections"),
    ("POST", "/library/collections"),
    ("GET", "/library/collections/{}/items"),
    ("PUT", "/library/collections/{}/items"),
}
# The query parameters the fake reads on those routes (the collection requests are checked
# against the newer file, paging as everywhere against the primary one).
COLLECTION_PARAMETERS = {
    ("POST", "/library/collections"): {"type", "title", "smart", "sectionId", "uri"},
    ("PUT", "/library/collections/{}/items"): {"uri"},
    ("GET", "/library/collections/{}/items"): set(),
    ("GET", "/library/sections/{}/collections"): set(),
}

# Where the primary file and real servers disagree, the fake follows the real server:
# - an item in a library listing or its metadata carries titleSort only when it differs from
#   the title, tagline/rating/audienceRating only when the agent found one, and index,
#   childCount, seasonCount and theme only when it is a show; the file requires them all.
ITEM_ATTRIBUTES_REAL_SERVERS_MAY_OMIT = {
    "titleSort",
    "tagline",
    "rating",
    "audienceRating",
    "index",
    "childCount",
    "seasonCount",
    "theme",
}
# - in recently added, ratingKey is a string (as everywhere else, and as the newer file says),
#   videoResolution is "1080", "720", "4k"...: strings, not the numbers the file says, and
#   originallyAvailableAt is a date ("1999-03-31", the file's format everywhere else), not the
#   date-time the file says there.
RECENTLY_ADDED_AS_REAL_SERVERS_WRITE = {
    "ratingKey": {"type": "string"},
    "videoResolution": {"type": "string"},
    "originallyAvailableAt": {"type": "string", "format": "date"},
}


def _folder(env: str) -> Path:
    folder = os.environ.get(env)
    require(folder and Path(folder).is_dir(), f"{env} does not name a folder")
    return Path(str(folder))


@functools.cache
def _spec(name: str) -> dict[str, Any]:
    path = _folder("MEDIANEST_TEST_CONTRACTS_DIR") / name
    require(path.exists(), f"{path} does not exist")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return dict(yaml.load(path.read_text(), Loader=loader))


def _recording(name: str) -> ET.Element:
    return ET.fromstring((_folder("MEDIANEST_TEST_RECORDED_DIR") / "plex" / name).read_bytes())


def _shape(path: str) -> str:
    return re.sub(r"{[^}]+}", "{}", path)


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """The server's operations (plex.tv's carry a ``servers`` override of their own)."""
    return {
        (method.upper(), _shape(path))
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS and not op.get("servers")
    }


def test_every_route_the_fake_serves_is_in_the_spec() -> None:
    served = {
        (route.method, _shape(route.resource.canonical))
        for route in FakePlexMediaServer(seed=False).app().router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert ("GET", "/library/sections/{}/refresh") in served
    primary, newer = _operations(_spec(PRIMARY)), _operations(_spec(NEWER))
    assert served - primary == ONLY_IN_NEWER
    assert ONLY_IN_NEWER.issubset(newer)
    # The disagreement noted above, so the note stays true.
    assert ("POST", "/library/sections/{}/refresh") in newer
    assert ("GET", "/library/sections/{}/refresh") in primary


def _primary_schema(path: str) -> dict[str, Any]:
    operation = _spec(PRIMARY)["paths"][path]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return copy.deepcopy(schema)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _metadata_items(schema: dict[str, Any]) -> dict[str, Any]:
    for node in _walk(schema):
        if "Metadata" in node.get("properties", {}):
            items: dict[str, Any] = node["properties"]["Metadata"]["items"]
            return items
    raise AssertionError("the schema has no Metadata")


def _optional(schema: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The schema with ``names`` no longer required of its Metadata items."""
    items = _metadata_items(schema)
    for part in [items, *items.get("allOf", [])]:
        if "required" in part:
            part["required"] = [r for r in part["required"] if r not in names]
    return schema


def _retyped(schema: dict[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    for node in list(_walk(schema)):
        for name, replacement in properties.items():
            if name in node.get("properties", {}):
                node["properties"][name] = dict(replacement)
    return schema


def _errors(schema: dict[str, Any], body: Any) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]


def _newer_errors(pointer: str, body: Any) -> list[str]:
    registry: Registry[Any] = Registry().with_resource(
        NEWER_URI, Resource.from_contents(_spec(NEWER), default_specification=DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": f"{NEWER_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]


def _schemas() -> dict[str, dict[str, Any]]:
    """The primary file's schema of each call, with the documented allowances."""
    return {
        "/identity": _primary_schema("/identity"),
        "/": _primary_schema("/"),
        "/library/sections": _primary_schema("/library/sections"),
        "/library/sections/{sectionKey}/all": _optional(
            _primary_schema("/library/sections/{sectionKey}/all"),
            ITEM_ATTRIBUTES_REAL_SERVERS_MAY_OMIT,
        ),
        "/library/metadata/{ratingKey}": _optional(
            _primary_schema("/library/metadata/{ratingKey}"), ITEM_ATTRIBUTES_REAL_SERVERS_MAY_OMIT
        ),
        "/library/metadata/{ratingKey}/children": _primary_schema(
            "/library/metadata/{ratingKey}/children"
        ),
        "/library/recentlyAdded": _retyped(
            _primary_schema("/library/recentlyAdded"), RECENTLY_ADDED_AS_REAL_SERVERS_WRITE
        ),
        "/status/sessions": _primary_schema("/status/sessions"),
    }


async def _json_tour(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> list[tuple[str, Any]]:
    """What MediaNest asks for, in JSON, with the spec path of each answer."""
    matrix, show = pms.find("The Matrix"), pms.find("Breaking Bad")
    season = show.children[0]
    pms.start_session(pms.find("Pilot"), user="bob", progress=0.3, transcode=True)
    pms.start_session(matrix, user="alice", progress=0.6)
    pms.start_session(pms.find("Digital Love"), user="carol", progress=0.1)
    answers: list[tuple[str, Any]] = []
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("/identity", "/identity", {}),
        ("/", "/", {}),
        ("/library/sections", "/library/sections", {}),
        ("/library/sections/{sectionKey}/all", "/library/sections/1/all", {"includeGuids": 1}),
        ("/library/sections/{sectionKey}/all", "/library/sections/2/all", {"includeGuids": 1}),
        ("/library/metadata/{ratingKey}", f"/library/metadata/{matrix.rating_key}", {}),
        ("/library/metadata/{ratingKey}", f"/library/metadata/{show.rating_key}", {}),
        (
            "/library/metadata/{ratingKey}/children",
            f"/library/metadata/{show.rating_key}/children",
            {},
        ),
        (
            "/library/metadata/{ratingKey}/children",
            f"/library/metadata/{season.rating_key}/children",
            {},
        ),
        ("/library/recentlyAdded", "/library/recentlyAdded", {}),
        ("/hubs/search", "/hubs/search", {"query": "the", "limit": 5}),
        ("/status/sessions", "/status/sessions", {}),
    ]
    for spec_path, path, params in calls:
        answers.append((spec_path, {"MediaContainer": await js(http, pms, path, **params)}))
    return answers


async def test_json_answers_validate_against_the_spec(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    schemas = _schemas()
    problems: list[str] = []
    for spec_path, body in await _json_tour(http, pms):
        if spec_path == "/hubs/search":
            # The primary file gives no schema for search; the newer file does.
            pointer = "/paths/~1hubs~1search/get/responses/200/content/application~1json/schema"
            errors = _newer_errors(pointer, body)
        else:
            errors = _errors(schemas[spec_path], body)
        problems += [f"{spec_path}: {e}" for e in errors]
        if spec_path == "/status/sessions":
            # The primary file does not describe the transcode session, and gives the session
            # location no values; the newer file does both.
            sessions = body["MediaContainer"]["Metadata"]
            assert sum("TranscodeSession" in s for s in sessions) == 1
            for s in sessions:
                for element in ("TranscodeSession", "Session", "Player", "User"):
                    if element in s:
                        pointer = f"/components/schemas/{element}"
                        problems += [f"{element}: {e}" for e in _newer_errors(pointer, s[element])]
    assert problems == []


async def test_the_allowances_cover_only_what_real_servers_leave_out(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    # Shows carry what films go without, and the seeded films carry their ratings.
    shows = await js(http, pms, "/library/sections/2/all")
    for show in shows["Metadata"]:
        assert {"index", "childCount", "seasonCount", "theme"} <= set(show)
    films = await js(http, pms, "/library/sections/1/all")
    for film in films["Metadata"]:
        assert {"tagline", "rating", "audienceRating"} <= set(film)
        assert "index" not in film and "childCount" not in film
    matrix = next(f for f in films["Metadata"] if f["title"] == "The Matrix")
    assert matrix["titleSort"] == "Matrix"


async def test_the_schema_check_would_catch_a_wrong_answer(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    schemas = _schemas()
    body = {"MediaContainer": await js(http, pms, "/library/sections/1/all")}
    assert _errors(schemas["/library/sections/{sectionKey}/all"], body) == []
    wrong = copy.deepcopy(body)
    wrong["MediaContainer"]["Metadata"][0]["ratingKey"] = 101
    del wrong["MediaContainer"]["Metadata"][1]["guid"]
    errors = _errors(schemas["/library/sections/{sectionKey}/all"], wrong)
    assert any("101 is not of type 'string'" in e for e in errors)
    assert any("'guid' is a required property" in e for e in errors)
    lost = {"id": "x", "bandwidth": 10, "location": "moon"}
    assert _newer_errors("/components/schemas/Session", lost) != []
    pointer = "/paths/~1hubs~1search/get/responses/200/content/application~1json/schema"
    hubs = {"MediaContainer": await js(http, pms, "/hubs/search", query="matrix")}
    assert _newer_errors(pointer, hubs) == []
    films = next(h for h in hubs["MediaContainer"]["Hub"] if h["type"] == "movie")
    del films["Metadata"][0]["addedAt"]
    films["size"] = "1"
    errors = _newer_errors(pointer, hubs)
    assert any("'addedAt' is a required property" in e for e in errors)
    assert any("'1' is not of type 'integer'" in e for e in errors)


# --- contract: the recorded responses ------------------------------------------------------------


def structure_mismatches(recorded: ET.Element, ours: ET.Element, where: str = "") -> list[str]:
    """How ``ours`` lacks the structure of ``recorded``: each recorded element must have a
    counterpart (same element name, same ``type``) with at least its attributes, recursively.
    The recordings are trimmed, so ours may carry more."""
    kind = recorded.get("type")
    here = f"{where}/{recorded.tag}" + (f"[{kind}]" if kind else "")
    if ours.tag != recorded.tag:
        return [f"{here}: the fake answers <{ours.tag}>"]
    problems: list[str] = []
    missing = sorted(set(recorded.attrib) - set(ours.attrib))
    if missing:
        problems.append(f"{here}: no {', '.join(missing)}")
    for child in recorded:
        candidates = [c for c in ours if (c.tag, c.get("type")) == (child.tag, child.get("type"))]
        if not candidates:
            problems.append(f"{here}: no <{child.tag}> of type {child.get('type')}")
            continue
        options = [structure_mismatches(child, c, here) for c in candidates]
        problems.extend(sorted(options, key=len)[0])
    element_of = {c.get("type"): c.tag for c in recorded if c.get("type")}
    for child in ours:
        kind = child.get("type")
        if kind in element_of and child.tag != element_of[kind]:
            problems.append(f"{here}: a {kind} is <{child.tag}>, not <{element_of[kind]}>")
    return problems


async def _sessions_like_the_recording(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> ET.Element:
    # The recording: an episode and a film, both transcoding, and a track played directly.
    pms.start_session(pms.find("Pilot"), user="someone", progress=0.1, transcode=True)
    pms.start_session(pms.find("The Matrix"), user="someone", progress=0.1, transcode=True)
    pms.start_session(pms.find("Digital Love"), user="someone", progress=0.1)
    root: ET.Element = await xml(http, pms, "/status/sessions")
    return root


async def test_xml_answers_have_the_structure_of_the_recordings(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    recorded = _recording("plex-recently_added.xml")
    ours = await xml(http, pms, "/library/recentlyAdded")
    assert structure_mismatches(recorded, ours) == []

    recorded = _recording("plex-status_sessions.xml")
    ours = await _sessions_like_the_recording(http, pms)
    assert structure_mismatches(recorded, ours) == []


async def test_the_structure_check_would_catch_a_missing_attribute_or_element(
    http: aiohttp.ClientSession, pms: FakePlexMediaServer
) -> None:
    recorded = _recording("plex-status_sessions.xml")
    ours = await _sessions_like_the_recording(http, pms)
    for video in ours.iter("Video"):
        video.attrib.pop("viewOffset")
        transcode = video.find("TranscodeSession")
        if transcode is not None and video.get("type") == "movie":
            video.remove(transcode)
    problems = structure_mismatches(recorded, ours)
    assert any("no viewOffset" in p for p in problems)
    assert any("[movie]: no <TranscodeSession>" in p for p in problems)

    recorded = _recording("plex-recently_added.xml")
    ours = await xml(http, pms, "/library/recentlyAdded")
    season = next(e for e in ours if e.get("type") == "season")
    season.tag = "Video"
    assert any("a season is <Video>" in p for p in structure_mismatches(recorded, ours))


def _newer_query_parameters(method: str, shape: str) -> tuple[str, set[str], set[str]]:
    """The newer file's path for an operation, and the names of its query parameters (all, and
    the required ones)."""
    spec = _spec(NEWER)
    path = next(p for p in spec["paths"] if _shape(p) == shape)
    item = spec["paths"][path]
    names: set[str] = set()
    required: set[str] = set()
    for param in [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]:
        if "$ref" in param:
            param = spec["components"]["parameters"][param["$ref"].rsplit("/", 1)[-1]]
        if param.get("in") == "query":
            names.add(param["name"])
            if param.get("required"):
                required.add(param["name"])
    return path, names, required


def test_the_collection_routes_take_the_parameters_of_the_spec() -> None:
    assert set(COLLECTION_PARAMETERS) == ONLY_IN_NEWER
    for (method, shape), taken in COLLECTION_PARAMETERS.items():
        _, names, required = _newer_query_parameters(method, shape)
        assert taken <= names, f"{method} {shape}: the spec has no {taken - names}"
        assert required <= taken, f"{method} {shape}: the fake ignores {required - taken}"
    # Creating one needs the library and (for a smart one) the uri; adding needs the uri.
    assert _newer_query_parameters("POST", "/library/collections")[2] == {"sectionId"}
    assert _newer_query_parameters("PUT", "/library/collections/{}/items")[2] == {"uri"}


async def test_the_collection_answers_validate_against_the_spec(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pms = videos_on_disk(tmp_path)
    async with pms:
        await call(http, pms, "/library/sections/1/refresh")
        keys = [pms.find("01 - Beach").rating_key, pms.find("02 - Hills").rating_key]
        params = {"type": "1", "title": "Trip", "smart": "0", "sectionId": "1"}
        made = await send(
            http, pms, "POST", "/library/collections", params | {"uri": _uri(pms, keys[0])}
        )
        key = made.container["Metadata"][0]["ratingKey"]
        answers = [
            ("POST", "/library/collections", made),
            (
                "PUT",
                "/library/collections/{}/items",
                await send(
                    http, pms, "PUT", f"/library/collections/{key}/items", {"uri": _uri(pms, *keys)}
                ),
            ),
            (
                "GET",
                "/library/collections/{}/items",
                await send(http, pms, "GET", f"/library/collections/{key}/items"),
            ),
            (
                "GET",
                "/library/sections/{}/collections",
                await send(http, pms, "GET", "/library/sections/1/collections"),
            ),
        ]
        problems: list[str] = []
        for method, shape, answer in answers:
            assert answer.status == 200, answer.text
            path, _, _ = _newer_query_parameters(method, shape)
            escaped = path.replace("~", "~0").replace("/", "~1")
            pointer = (
                f"/paths/{escaped}/{method.lower()}/responses/200/content/application~1json/schema"
            )
            problems += [f"{method} {shape}: {e}" for e in _newer_errors(pointer, answer.json)]
        assert problems == []
        # The check would catch a wrong answer.
        wrong = copy.deepcopy(answers[0][2].json)
        wrong["MediaContainer"]["Metadata"][0]["ratingKey"] = 7
        del wrong["MediaContainer"]["Metadata"][0]["title"]
        pointer = (
            "/paths/~1library~1collections/post/responses/200/content/application~1json/schema"
        )
        errors = _newer_errors(pointer, wrong)
        assert any("7 is not of type 'string'" in e for e in errors)
        assert any("'title' is a required property" in e for e in errors)
