"""Fake Sonarr and Radarr (API v3): library, lookups, adds, queue, calendar, wanted and commands.

Both speak ``/api/v3/...`` as the real servers do, with what the two have in common in
:class:`FakeArr`:

* Auth is the ``X-Api-Key`` header or the ``apikey`` query parameter. Anything else is refused
  with 401: servers of the Nancy era (Sonarr 3, Radarr 3) answer ``{"error": "Unauthorized"}``,
  the ASP.NET Core ones (Sonarr 4, Radarr 4 and later) an empty body. ``version`` picks the era
  and with it the few response fields that differ (``FakeSonarr(version="4.0.14.2939")`` has no
  language profiles left, only the placeholder Sonarr 4 answers).
* Adds answer ``201 Created``, updates ``202 Accepted`` (the published specs say 200; the servers
  answer 201/202), and refused adds ``400`` with FluentValidation's list of failures, e.g.
  ``[{"propertyName": "TmdbId", "errorMessage": "This movie has already been added", ...}]``.
* Fields that are null are left out, as the servers' serialisers do; times are UTC with a ``Z``.

They are seeded with a catalogue of real films and series (The Matrix is TMDB 603, Breaking Bad
TVDB 81189, with their seasons and episode counts) that lookups search and adds draw from, a
root folder with its disk space, the default quality profiles and two tags. Tests drive them with
:meth:`FakeArr.add_health_warning`, :meth:`FakeRadarr.add_queue_item` /
:meth:`FakeSonarr.add_queue_item`, :meth:`FakeArr.advance_download`,
:meth:`FakeArr.import_download`, ``mark_downloaded`` and ``add_to_library``, and inspect
``added_movies`` / ``added_series`` (the bodies clients posted) and ``commands``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Self

from aiohttp import web
from aiohttp.typedefs import Handler

from .base import FakeServer

JSON = dict[str, Any]

# --- formatting as the servers do ---------------------------------------------------------------


def _ts(value: datetime) -> str:
    """A UTC time as .NET writes it: ``2022-05-23T09:49:13.983201Z`` (no trailing zeros)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _day(value: date) -> datetime:
    return datetime.combine(value, time(), UTC)


def _span(seconds: float) -> str:
    """A .NET ``TimeSpan``: ``00:04:10``, or ``1.02:03:04`` past a day."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{text}" if days else text


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        # A "+01:00" offset arrives as " 01:00" when the client did not encode the "+".
        value = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _clean_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]", "", title.lower())


def _sort_title(title: str) -> str:
    return re.sub(r"^(the|a|an) ", "", title.lower())


def _slug(title: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", title.lower())).strip("-")


def _folder_name(title: str) -> str:
    return re.sub(r'[<>:"/\\|?*]', "", title).strip()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _compact(record: JSON) -> JSON:
    """Leave out nulls, as the servers' JSON settings do."""
    return {k: v for k, v in record.items() if v is not None}


class _BadRequest(Exception):
    pass


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes")


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"The value '{value}' is not valid for {name}.") from None


def _int_list(request: web.Request, name: str) -> list[int]:
    values: list[int] = []
    for raw in request.query.getall(name, []):
        for part in raw.split(","):
            if part.strip():
                try:
                    values.append(int(part))
                except ValueError:
                    raise _BadRequest(f"The value '{part}' is not valid for {name}.") from None
    return values


def _failure(
    prop: str, message: str, value: Any, code: str | None = None, label: str | None = None
) -> JSON:
    """One FluentValidation failure as the servers serialise it."""
    failure: JSON = {
        "propertyName": prop,
        "errorMessage": message,
        "attemptedValue": value,
        "severity": "error",
    }
    if code:
        failure["errorCode"] = code
        failure["formattedMessageArguments"] = []
        failure["formattedMessagePlaceholderValues"] = _compact(
            {"propertyName": label or prop, "propertyValue": value}
        )
    return _compact(failure)


def _invalid(failures: Sequence[JSON]) -> web.Response:
    return web.json_response(list(failures), status=400)


def _message(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


# --- the seeded catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueMovie:
    """A film as Radarr's metadata source (TMDB) knows it: what lookups find and adds use."""

    tmdb_id: int
    imdb_id: str
    title: str
    year: int
    runtime: int
    certification: str
    studio: str
    genres: tuple[str, ...]
    overview: str
    in_cinemas: date
    physical_release: date | None = None
    digital_release: date | None = None
    imdb_rating: tuple[int, float] = (0, 0.0)
    tmdb_rating: tuple[int, float] = (0, 0.0)
    collection: tuple[str, int] | None = None
    youtube_trailer_id: str = ""
    original_title: str = ""
    original_language: tuple[int, str] = (1, "English")

    @property
    def folder(self) -> str:
        return f"{_folder_name(self.title)} ({self.year})"

    def released(self) -> date | None:
        """When it left the cinemas, as Radarr reckons it (digital or physical, else +90 days)."""
        dates = [d for d in (self.digital_release, self.physical_release) if d]
        return min(dates) if dates else self.in_cinemas + timedelta(days=90)


@dataclass(frozen=True)
class CatalogueSeries:
    """A series as Sonarr's metadata source (TVDB) knows it: seasons as (premiere, episodes)."""

    tvdb_id: int
    imdb_id: str
    tmdb_id: int
    title: str
    year: int
    network: str
    air_time: str
    runtime: int
    certification: str
    genres: tuple[str, ...]
    overview: str
    ended: bool
    seasons: tuple[tuple[date, int], ...]
    rating: tuple[int, float] = (0, 0.0)
    tv_maze_id: int = 0
    tv_rage_id: int = 0
    # Hours from the network's local air time to UTC (5 for US Eastern standard time).
    utc_offset: int = 5
    titles: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def episode_title(self, season: int, number: int) -> str:
        for titled_season, titles in self.titles:
            if titled_season == season and number <= len(titles):
                return titles[number - 1]
        return f"Episode {number}"

    def air_dates(self, season: int) -> list[tuple[date, datetime]]:
        """Local air date and UTC air time of each episode of ``season`` (weekly)."""
        premiere, count = self.seasons[season - 1]
        hour, minute = (int(p) for p in self.air_time.split(":"))
        out = []
        for n in range(count):
            local = premiere + timedelta(weeks=n)
            utc = datetime.combine(local, time(hour, minute), UTC) + timedelta(
                hours=self.utc_offset
            )
            out.append((local, utc))
        return out


MOVIES: tuple[CatalogueMovie, ...] = (
    CatalogueMovie(
        tmdb_id=603,
        imdb_id="tt0133093",
        title="The Matrix",
        year=1999,
        runtime=136,
        certification="R",
        studio="Warner Bros. Pictures",
        genres=("Action", "Science Fiction"),
        overview="A hacker learns that the world he lives in is a simulation and joins the "
        "rebellion against the machines that built it.",
        in_cinemas=date(1999, 3, 30),
        physical_release=date(1999, 9, 21),
        imdb_rating=(2100000, 8.7),
        tmdb_rating=(26000, 8.2),
        collection=("The Matrix Collection", 2344),
        youtube_trailer_id="vKQi3bBA1y8",
    ),
    CatalogueMovie(
        tmdb_id=604,
        imdb_id="tt0234215",
        title="The Matrix Reloaded",
        year=2003,
        runtime=138,
        certification="R",
        studio="Warner Bros. Pictures",
        genres=("Adventure", "Action", "Thriller", "Science Fiction"),
        overview="Neo and the rebels race to defend Zion as an army of machines digs toward "
        "the last human city.",
        in_cinemas=date(2003, 5, 15),
        physical_release=date(2003, 10, 14),
        imdb_rating=(650000, 7.2),
        tmdb_rating=(10500, 7.0),
        collection=("The Matrix Collection", 2344),
    ),
    CatalogueMovie(
        tmdb_id=27205,
        imdb_id="tt1375666",
        title="Inception",
        year=2010,
        runtime=148,
        certification="PG-13",
        studio="Legendary Pictures",
        genres=("Action", "Science Fiction", "Adventure"),
        overview="A thief who steals secrets from dreams is offered a way home if he can plant "
        "an idea instead.",
        in_cinemas=date(2010, 7, 15),
        physical_release=date(2010, 12, 7),
        imdb_rating=(2600000, 8.8),
        tmdb_rating=(37000, 8.4),
    ),
    CatalogueMovie(
        tmdb_id=157336,
        imdb_id="tt0816692",
        title="Interstellar",
        year=2014,
        runtime=169,
        certification="PG-13",
        studio="Paramount Pictures",
        genres=("Adventure", "Drama", "Science Fiction"),
        overview="With Earth failing, a former pilot leads an expedition through a wormhole in "
        "search of a new home.",
        in_cinemas=date(2014, 11, 5),
        physical_release=date(2015, 3, 31),
        digital_release=date(2015, 3, 17),
        imdb_rating=(2200000, 8.7),
        tmdb_rating=(36000, 8.4),
    ),
    CatalogueMovie(
        tmdb_id=129,
        imdb_id="tt0245429",
        title="Spirited Away",
        original_title="千と千尋の神隠し",
        original_language=(8, "Japanese"),
        year=2001,
        runtime=125,
        certification="PG",
        studio="Studio Ghibli",
        genres=("Animation", "Family", "Fantasy"),
        overview="A girl wanders into a world of spirits and must work in a bathhouse to free "
        "her parents.",
        in_cinemas=date(2001, 7, 20),
        physical_release=date(2003, 4, 15),
        imdb_rating=(900000, 8.6),
        tmdb_rating=(17000, 8.5),
    ),
    CatalogueMovie(
        tmdb_id=496243,
        imdb_id="tt6751668",
        title="Parasite",
        original_title="기생충",
        original_language=(21, "Korean"),
        year=2019,
        runtime=133,
        certification="R",
        studio="Barunson E&A",
        genres=("Comedy", "Thriller", "Drama"),
        overview="A poor family talks its way, one member at a time, into the household of a "
        "wealthy one.",
        in_cinemas=date(2019, 5, 30),
        physical_release=date(2020, 1, 28),
        digital_release=date(2020, 1, 28),
        imdb_rating=(950000, 8.5),
        tmdb_rating=(18000, 8.5),
    ),
    CatalogueMovie(
        tmdb_id=438631,
        imdb_id="tt1160419",
        title="Dune",
        year=2021,
        runtime=155,
        certification="PG-13",
        studio="Legendary Pictures",
        genres=("Science Fiction", "Adventure"),
        overview="The heir of a noble house is sent to the most dangerous planet in the "
        "universe, the only source of its most precious resource.",
        in_cinemas=date(2021, 9, 15),
        physical_release=date(2022, 1, 11),
        digital_release=date(2021, 10, 22),
        imdb_rating=(900000, 8.0),
        tmdb_rating=(12000, 7.8),
        collection=("Dune Collection", 726871),
    ),
    CatalogueMovie(
        tmdb_id=693134,
        imdb_id="tt15239678",
        title="Dune: Part Two",
        year=2024,
        runtime=167,
        certification="PG-13",
        studio="Legendary Pictures",
        genres=("Science Fiction", "Adventure"),
        overview="Paul Atreides unites with the Fremen while seeking revenge against those who "
        "destroyed his family.",
        in_cinemas=date(2024, 2, 27),
        physical_release=date(2024, 5, 14),
        digital_release=date(2024, 4, 16),
        imdb_rating=(600000, 8.5),
        tmdb_rating=(6000, 8.2),
        collection=("Dune Collection", 726871),
    ),
)

SERIES: tuple[CatalogueSeries, ...] = (
    CatalogueSeries(
        tvdb_id=81189,
        imdb_id="tt0903747",
        tmdb_id=1396,
        tv_maze_id=169,
        tv_rage_id=18164,
        title="Breaking Bad",
        year=2008,
        network="AMC",
        air_time="22:00",
        runtime=47,
        certification="TV-MA",
        genres=("Crime", "Drama", "Thriller"),
        overview="A chemistry teacher diagnosed with terminal cancer turns to making and "
        "selling methamphetamine to secure his family's future.",
        ended=True,
        seasons=(
            (date(2008, 1, 20), 7),
            (date(2009, 3, 8), 13),
            (date(2010, 3, 21), 13),
            (date(2011, 7, 17), 13),
            (date(2012, 7, 15), 16),
        ),
        rating=(32000, 9.4),
        titles=(
            (
                1,
                (
                    "Pilot",
                    "Cat's in the Bag...",
                    "...And the Bag's in the River",
                    "Cancer Man",
                    "Gray Matter",
                    "Crazy Handful of Nothin'",
                    "A No-Rough-Stuff-Type Deal",
                ),
            ),
        ),
    ),
    CatalogueSeries(
        tvdb_id=121361,
        imdb_id="tt0944947",
        tmdb_id=1399,
        tv_maze_id=82,
        title="Game of Thrones",
        year=2011,
        network="HBO",
        air_time="21:00",
        runtime=60,
        certification="TV-MA",
        genres=("Adventure", "Drama", "Fantasy"),
        overview="Noble families fight for control of the Iron Throne while an ancient enemy "
        "returns in the north.",
        ended=True,
        seasons=(
            (date(2011, 4, 17), 10),
            (date(2012, 4, 1), 10),
            (date(2013, 3, 31), 10),
            (date(2014, 4, 6), 10),
            (date(2015, 4, 12), 10),
            (date(2016, 4, 24), 10),
            (date(2017, 7, 16), 7),
            (date(2019, 4, 14), 6),
        ),
        rating=(45000, 9.0),
    ),
    CatalogueSeries(
        tvdb_id=79126,
        imdb_id="tt0306414",
        tmdb_id=1438,
        title="The Wire",
        year=2002,
        network="HBO",
        air_time="21:00",
        runtime=60,
        certification="TV-MA",
        genres=("Crime", "Drama", "Thriller"),
        overview="Baltimore's drug trade, docks, city hall, schools and newspaper, seen from "
        "both sides of the law.",
        ended=True,
        seasons=(
            (date(2002, 6, 2), 13),
            (date(2003, 6, 1), 12),
            (date(2004, 9, 19), 12),
            (date(2006, 9, 10), 13),
            (date(2008, 1, 6), 10),
        ),
        rating=(9000, 9.3),
    ),
    CatalogueSeries(
        tvdb_id=360893,
        imdb_id="tt7366338",
        tmdb_id=87108,
        title="Chernobyl",
        year=2019,
        network="HBO",
        air_time="21:00",
        runtime=65,
        certification="TV-MA",
        genres=("Drama", "History"),
        overview="The 1986 nuclear disaster and the people who sacrificed themselves to contain "
        "it.",
        ended=True,
        seasons=((date(2019, 5, 6), 5),),
        rating=(6000, 9.3),
        titles=(
            (
                1,
                (
                    "1:23:45",
                    "Please Remain Calm",
                    "Open Wide, O Earth",
                    "The Happiness of All Mankind",
                    "Vichnaya Pamyat",
                ),
            ),
        ),
    ),
    CatalogueSeries(
        tvdb_id=371980,
        imdb_id="tt11280740",
        tmdb_id=95396,
        title="Severance",
        year=2022,
        network="Apple TV+",
        air_time="21:00",
        runtime=50,
        certification="TV-MA",
        genres=("Drama", "Mystery", "Science Fiction"),
        overview="Office workers whose memories have been surgically divided between work and "
        "home begin to question their employer.",
        ended=False,
        seasons=((date(2022, 2, 18), 9), (date(2025, 1, 17), 10)),
        rating=(3000, 8.7),
    ),
)

# --- qualities and profiles ----------------------------------------------------------------------

# Sonarr: id -> (name, source, resolution); the profile layout, groups as (id, name, members).
_SONARR_QUALITIES: dict[int, tuple[str, str, int]] = {
    0: ("Unknown", "unknown", 0),
    1: ("SDTV", "television", 480),
    12: ("WEBRip-480p", "webRip", 480),
    8: ("WEBDL-480p", "web", 480),
    2: ("DVD", "dvd", 480),
    13: ("Bluray-480p", "bluray", 480),
    4: ("HDTV-720p", "television", 720),
    9: ("HDTV-1080p", "television", 1080),
    10: ("Raw-HD", "televisionRaw", 1080),
    14: ("WEBRip-720p", "webRip", 720),
    5: ("WEBDL-720p", "web", 720),
    6: ("Bluray-720p", "bluray", 720),
    15: ("WEBRip-1080p", "webRip", 1080),
    3: ("WEBDL-1080p", "web", 1080),
    7: ("Bluray-1080p", "bluray", 1080),
    20: ("Bluray-1080p Remux", "blurayRaw", 1080),
    16: ("HDTV-2160p", "television", 2160),
    17: ("WEBRip-2160p", "webRip", 2160),
    18: ("WEBDL-2160p", "web", 2160),
    19: ("Bluray-2160p", "bluray", 2160),
    21: ("Bluray-2160p Remux", "blurayRaw", 2160),
}
_Layout = tuple[int | tuple[int, str, tuple[int, ...]], ...]
_SONARR_LAYOUT: _Layout = (
    0,
    1,
    (1000, "WEB 480p", (12, 8)),
    (1001, "DVD", (2, 13)),
    4,
    9,
    10,
    (1002, "WEB 720p", (14, 5)),
    6,
    (1003, "WEB 1080p", (15, 3)),
    7,
    20,
    16,
    (1004, "WEB 2160p", (17, 18)),
    19,
    21,
)

# Radarr: id -> (name, source, resolution, modifier).
_RADARR_QUALITIES: dict[int, tuple[str, str, int, str]] = {
    0: ("Unknown", "unknown", 0, "none"),
    24: ("WORKPRINT", "workprint", 0, "none"),
    25: ("CAM", "cam", 0, "none"),
    26: ("TELESYNC", "telesync", 0, "none"),
    27: ("TELECINE", "telecine", 0, "none"),
    29: ("REGIONAL", "dvd", 480, "regional"),
    28: ("DVDSCR", "dvd", 480, "screener"),
    1: ("SDTV", "tv", 480, "none"),
    2: ("DVD", "dvd", 0, "none"),
    23: ("DVD-R", "dvd", 480, "none"),
    8: ("WEBDL-480p", "webdl", 480, "none"),
    12: ("WEBRip-480p", "webrip", 480, "none"),
    20: ("Bluray-480p", "bluray", 480, "none"),
    21: ("Bluray-576p", "bluray", 576, "none"),
    4: ("HDTV-720p", "tv", 720, "none"),
    5: ("WEBDL-720p", "webdl", 720, "none"),
    14: ("WEBRip-720p", "webrip", 720, "none"),
    6: ("Bluray-720p", "bluray", 720, "none"),
    9: ("HDTV-1080p", "tv", 1080, "none"),
    3: ("WEBDL-1080p", "webdl", 1080, "none"),
    15: ("WEBRip-1080p", "webrip", 1080, "none"),
    7: ("Bluray-1080p", "bluray", 1080, "none"),
    30: ("Remux-1080p", "bluray", 1080, "remux"),
    16: ("HDTV-2160p", "tv", 2160, "none"),
    18: ("WEBDL-2160p", "webdl", 2160, "none"),
    17: ("WEBRip-2160p", "webrip", 2160, "none"),
    19: ("Bluray-2160p", "bluray", 2160, "none"),
    31: ("Remux-2160p", "bluray", 2160, "remux"),
    22: ("BR-DISK", "bluray", 1080, "brdisk"),
    10: ("Raw-HD", "tv", 1080, "rawhd"),
}
_RADARR_LAYOUT: _Layout = (
    0,
    24,
    25,
    26,
    27,
    29,
    28,
    1,
    2,
    23,
    (1000, "WEB 480p", (8, 12)),
    20,
    21,
    4,
    (1001, "WEB 720p", (5, 14)),
    6,
    9,
    (1002, "WEB 1080p", (3, 15)),
    7,
    30,
    16,
    (1003, "WEB 2160p", (18, 17)),
    19,
    31,
    22,
    10,
)

# The default profiles both servers create: (id, name, cutoff quality, allowed qualities).
_SD = (1, 12, 8, 2, 13, 20, 21, 23)
_HD720 = (4, 14, 5, 6)
_HD1080 = (9, 15, 3, 7, 30)
_UHD = (16, 17, 18, 19, 31)
_PROFILES: tuple[tuple[int, str, int, tuple[int, ...]], ...] = (
    (1, "Any", 4, _SD + _HD720 + _HD1080[:4]),
    (2, "SD", 1, _SD),
    (3, "HD-720p", 4, _HD720),
    (4, "HD-1080p", 9, _HD1080),
    (5, "Ultra-HD", 16, _UHD),
    (6, "HD - 720p/1080p", 4, _HD720 + _HD1080),
)

_LANGUAGES = (
    (0, "Unknown"),
    (1, "English"),
    (2, "French"),
    (3, "Spanish"),
    (4, "German"),
    (5, "Italian"),
    (8, "Japanese"),
    (21, "Korean"),
)

_COMMAND_NAMES = {
    "MoviesSearch": "Movies Search",
    "MissingMoviesSearch": "Missing Movies Search",
    "RefreshMovie": "Refresh Movie",
    "SeriesSearch": "Series Search",
    "SeasonSearch": "Season Search",
    "EpisodeSearch": "Episode Search",
    "MissingEpisodeSearch": "Missing Episode Search",
    "RefreshSeries": "Refresh Series",
    "RssSync": "Rss Sync",
}


# --- state shared by both servers ----------------------------------------------------------------


@dataclass
class Download:
    """One item in the download queue, as the download client reports it."""

    id: int
    title: str
    size: int
    sizeleft: int
    rate: int
    quality_id: int
    protocol: str
    download_client: str
    indexer: str
    download_id: str
    added: datetime
    status: str = "downloading"
    tracked_status: str = "ok"
    tracked_state: str = "downloading"
    messages: list[JSON] = field(default_factory=list)
    error: str | None = None
    movie_id: int | None = None
    series_id: int | None = None
    episode_id: int | None = None


@dataclass
class _Command:
    id: int
    name: str
    fields: JSON
    trigger: str
    queued: datetime
    status: str = "queued"
    started: datetime | None = None
    ended: datetime | None = None


@dataclass
class _MediaFile:
    id: int
    quality_id: int
    size: int
    added: datetime
    release_group: str
    scene_name: str


@dataclass
class FakeArr(FakeServer):
    """What Sonarr and Radarr share: auth, system, profiles, disk, tags, queue and commands."""

    api_key: str = "5f0e3c3a9d2b4c7e8a1f6b0d4e2c9a7b"
    version: str = ""
    instance_name: str = ""
    root_folders: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=lambda: ["kids", "4k"])
    health: list[JSON] = field(default_factory=list)
    # Commands finish (and read back ``completed``) as soon as a client asks about them; set
    # False to hold them ``queued`` until :meth:`finish_command`.
    auto_complete_commands: bool = True
    # Every command body a client posted, oldest first.
    commands: list[JSON] = field(default_factory=list)

    app_name: ClassVar[str] = ""
    _layout: ClassVar[_Layout] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        self.started_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
        self.queue: dict[int, Download] = {}
        self._commands: dict[int, _Command] = {}
        self._command_ids = itertools.count(1)
        self._file_ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    # --- era ------------------------------------------------------------------------------------

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def modern(self) -> bool:
        """ASP.NET Core (Sonarr 4, Radarr 4+) rather than Nancy (Sonarr 3, Radarr 3)."""
        return self.major >= 4

    # --- test controls --------------------------------------------------------------------------

    def add_health_warning(
        self, source: str, message: str, *, type: str = "warning", wiki_url: str | None = None
    ) -> None:
        """Add one entry to ``GET /api/v3/health`` (``type``: notice, warning or error)."""
        self.health.append(
            _compact(
                {
                    "source": source,
                    "type": type,
                    "message": message,
                    "wikiUrl": wiki_url
                    or f"https://wiki.servarr.com/{self.app_name.lower()}/system#" + _slug(source),
                }
            )
        )

    def advance_download(self, queue_id: int, fraction: float) -> None:
        """Let the download client fetch ``fraction`` of the item's size; at the end it is
        ``completed`` and waiting to be imported."""
        item = self.queue[queue_id]
        item.sizeleft = max(0, item.sizeleft - round(item.size * fraction))
        if item.sizeleft == 0:
            item.status = "completed"
            item.tracked_state = "importPending"

    def set_download_state(
        self,
        queue_id: int,
        *,
        status: str | None = None,
        tracked_state: str | None = None,
        tracked_status: str | None = None,
        message: str | None = None,
        error: str | None = None,
    ) -> None:
        """Put a queue item in another state, e.g. ``paused``, or ``importBlocked`` with a
        warning ``message``."""
        item = self.queue[queue_id]
        item.status = status or item.status
        item.tracked_state = tracked_state or item.tracked_state
        item.tracked_status = tracked_status or item.tracked_status
        if message:
            item.messages.append({"title": item.title, "messages": [message]})
        item.error = error

    def import_download(self, queue_id: int) -> None:
        """Import a queue item: it leaves the queue and its movie or episode has its file."""
        item = self.queue.pop(queue_id)
        self._imported(item)

    def finish_command(self, command_id: int, status: str = "completed") -> None:
        """Finish a command (``completed`` or ``failed``)."""
        command = self._commands[command_id]
        now = datetime.now(UTC)
        command.started = command.started or now
        command.ended = now
        command.status = status

    def command_names(self) -> list[str]:
        """Names of every command the server queued, its own included (e.g. after an add)."""
        return [c.name for c in self._commands.values()]

    # --- hooks for the subclasses ---------------------------------------------------------------

    def _status_fields(self) -> JSON:
        raise NotImplementedError

    def _quality(self, quality_id: int) -> JSON:
        raise NotImplementedError

    def _queue_record(self, item: Download, request: web.Request) -> JSON:
        raise NotImplementedError

    def _imported(self, item: Download) -> None:
        raise NotImplementedError

    def _profile_extra(self) -> JSON:
        return {}

    # --- the app --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._auth_middleware)
        return app

    def _common_routes(self, app: web.Application) -> None:
        get = app.router.add_get
        get("/api/v3/system/status", self.get_status, allow_head=False)
        get("/api/v3/health", self.get_health, allow_head=False)
        get("/api/v3/diskspace", self.get_diskspace, allow_head=False)
        get("/api/v3/qualityprofile", self.get_quality_profiles, allow_head=False)
        get("/api/v3/rootfolder", self.get_root_folders, allow_head=False)
        get("/api/v3/tag", self.get_tags, allow_head=False)
        get("/api/v3/queue", self.get_queue, allow_head=False)
        get("/api/v3/command", self.get_commands, allow_head=False)
        get(r"/api/v3/command/{id:\d+}", self.get_command, allow_head=False)
        app.router.add_post("/api/v3/command", self.post_command)

    def _authorised(self, request: web.Request) -> bool:
        query = next((v for k, v in request.query.items() if k.lower() == "apikey"), None)
        header = request.headers.get("X-Api-Key")
        if self.modern:
            # ASP.NET Core: the query parameter first, then the header, then a bearer token.
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            given: str | None = query if query is not None else header or bearer
        else:
            given = header or query
        return bool(given) and given == self.api_key

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.lower().startswith("/api") and not self._authorised(request):
            if self.modern:
                return web.Response(status=401)
            return web.json_response({"error": "Unauthorized"}, status=401)
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _message(400, str(exc))

    async def _body(self, request: web.Request) -> JSON:
        try:
            body = json.loads(await request.text() or "null")
        except ValueError as exc:
            raise _BadRequest(f"Invalid request body. {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("Request body can't be empty")
        return body

    # --- system, health, disk, profiles, tags ---------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        return web.json_response(self._status_fields())

    async def get_health(self, request: web.Request) -> web.Response:
        return web.json_response(self.health)

    def _disks(self) -> list[tuple[str, int, int]]:
        total = 4_000_787_030_016
        disks = [
            ("/", 62_725_623_808, 125_829_120_000),
            ("/config", 62_725_623_808, 125_829_120_000),
        ]
        disks += [(path, 1_832_701_952_000, total) for path in self.root_folders]
        return disks

    async def get_diskspace(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"path": path, "label": "", "freeSpace": free, "totalSpace": total}
                for path, free, total in self._disks()
            ]
        )

    def _unmapped(self, root: str) -> list[JSON]:
        return []

    async def get_root_folders(self, request: web.Request) -> web.Response:
        free = {path: f for path, f, _ in self._disks()}
        return web.json_response(
            [
                {
                    "path": root,
                    "accessible": True,
                    "freeSpace": free[root],
                    "unmappedFolders": self._unmapped(root),
                    "id": n,
                }
                for n, root in enumerate(self.root_folders, start=1)
            ]
        )

    def profile_ids(self) -> list[int]:
        return [pid for pid, *_ in _PROFILES]

    def _profile_items(self, allowed: tuple[int, ...]) -> list[JSON]:
        items: list[JSON] = []
        for entry in self._layout:
            if isinstance(entry, int):
                items.append(
                    {"quality": self._quality(entry), "items": [], "allowed": entry in allowed}
                )
            else:
                group_id, name, members = entry
                items.append(
                    {
                        "name": name,
                        "items": [
                            {"quality": self._quality(q), "items": [], "allowed": q in allowed}
                            for q in members
                        ],
                        "allowed": any(q in allowed for q in members),
                        "id": group_id,
                    }
                )
        return items

    def _cutoff(self, quality_id: int) -> int:
        for entry in self._layout:
            if isinstance(entry, tuple) and quality_id in entry[2]:
                return entry[0]
        return quality_id

    async def get_quality_profiles(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "name": name,
                    "upgradeAllowed": False,
                    "cutoff": self._cutoff(cutoff),
                    "items": self._profile_items(allowed),
                    **self._profile_extra(),
                    "id": pid,
                }
                for pid, name, cutoff, allowed in _PROFILES
            ]
        )

    def _validate_profile(self, body: JSON) -> list[JSON]:
        profile = body.get("qualityProfileId") or 0
        if profile == 0:
            return [
                _failure(
                    "QualityProfileId",
                    "'Quality Profile Id' must not be equal to '0'.",
                    profile,
                    "NotEqualValidator",
                    "Quality Profile Id",
                )
            ]
        if profile not in self.profile_ids():
            return [
                _failure(
                    "QualityProfileId",
                    "QualityProfile does not exist",
                    profile,
                    "QualityProfileExistsValidator",
                    "Quality Profile Id",
                )
            ]
        return []

    def _validate_add(self, body: JSON) -> list[JSON]:
        """The checks both servers run on an add, before their own duplicate check."""
        failures = self._validate_profile(body)
        if not body.get("rootFolderPath") and not body.get("path"):
            # Either will do; with neither, both rules fail.
            failures += [
                _failure("Path", "Invalid Path", body.get("path"), "PathValidator", "Path"),
                _failure(
                    "RootFolderPath",
                    "Invalid Path",
                    body.get("rootFolderPath"),
                    "PathValidator",
                    "Root Folder Path",
                ),
            ]
        return failures

    async def get_tags(self, request: web.Request) -> web.Response:
        return web.json_response(
            [{"label": label, "id": n} for n, label in enumerate(self.tags, start=1)]
        )

    # --- queue ----------------------------------------------------------------------------------

    def _new_download(
        self,
        title: str,
        *,
        size: int,
        downloaded: float,
        rate: int,
        quality_id: int,
        protocol: str,
        movie_id: int | None = None,
        series_id: int | None = None,
        episode_id: int | None = None,
    ) -> Download:
        download_id = hashlib.sha1(f"{title}{len(self.queue)}".encode()).hexdigest().upper()
        if protocol == "usenet":
            client, indexer = "SABnzbd", "NZBgeek"
            download_id = f"SABnzbd_nzo_{download_id[:8].lower()}"
        else:
            client, indexer = "qBittorrent", "1337x"
        queue_id = zlib.crc32(f"trackedDownload-1-{download_id}".encode()) & 0x7FFFFFFF
        item = Download(
            id=queue_id,
            title=title,
            size=size,
            sizeleft=size - round(size * downloaded),
            rate=rate,
            quality_id=quality_id,
            protocol=protocol,
            download_client=client,
            indexer=indexer,
            download_id=download_id,
            added=datetime.now(UTC) - timedelta(minutes=3),
            movie_id=movie_id,
            series_id=series_id,
            episode_id=episode_id,
        )
        if item.sizeleft == 0:
            item.status, item.tracked_state = "completed", "importPending"
        self.queue[queue_id] = item
        return item

    def _download_fields(self, item: Download) -> JSON:
        """The queue record fields both servers share, in their order."""
        now = datetime.now(UTC)
        if item.status == "downloading" and item.rate > 0:
            left: float | None = item.sizeleft / item.rate
        elif item.status == "completed":
            left = 0.0
        else:
            left = None
        return _compact(
            {
                "quality": {
                    "quality": self._quality(item.quality_id),
                    "revision": {"version": 1, "real": 0, "isRepack": False},
                },
                "size": item.size,
                "title": item.title,
                "sizeleft": item.sizeleft,
                "timeleft": _span(left) if left is not None else None,
                "estimatedCompletionTime": _ts(now + timedelta(seconds=left))
                if left is not None
                else None,
                "status": item.status,
                "trackedDownloadStatus": item.tracked_status,
                "trackedDownloadState": item.tracked_state,
                "statusMessages": item.messages,
                "errorMessage": item.error,
                "downloadId": item.download_id,
                "protocol": item.protocol,
                "downloadClient": item.download_client,
                "indexer": item.indexer,
                "outputPath": f"/downloads/complete/{item.title}",
            }
        )

    def _page(
        self,
        request: web.Request,
        records: list[JSON],
        default_key: str,
        default_direction: str,
    ) -> JSON:
        """The paging wrapper of ``/queue`` and ``/wanted/missing``."""
        page = max(1, _int_param(request, "page") or 1)
        size = _int_param(request, "pageSize") or 10
        key = request.query.get("sortKey") or default_key
        direction = request.query.get("sortDirection") or default_direction
        if direction not in ("ascending", "descending"):
            direction = default_direction
        records = _sorted(records, key, descending=direction == "descending")
        return {
            "page": page,
            "pageSize": size,
            "sortKey": key,
            "sortDirection": direction,
            "totalRecords": len(records),
            "records": records[(page - 1) * size : page * size],
        }

    async def get_queue(self, request: web.Request) -> web.Response:
        records = [self._queue_record(item, request) for item in self.queue.values()]
        return web.json_response(self._page(request, records, "timeleft", "ascending"))

    # --- commands -------------------------------------------------------------------------------

    def _queue_command(self, name: str, fields: JSON, trigger: str) -> _Command:
        command = _Command(
            id=next(self._command_ids),
            name=name,
            fields=fields,
            trigger=trigger,
            queued=datetime.now(UTC),
        )
        self._commands[command.id] = command
        return command

    def _command_json(self, command: _Command, *, settle: bool = True) -> JSON:
        """The command; asking about it lets it finish when ``auto_complete_commands``."""
        if settle and self.auto_complete_commands and command.status == "queued":
            self.finish_command(command.id)
        done = command.status in ("completed", "failed")
        message = "Completed" if command.status == "completed" else None
        duration = (
            command.ended - command.started
            if command.ended is not None and command.started is not None
            else None
        )
        body: JSON = {
            **command.fields,
            "sendUpdatesToClient": True,
            "updateScheduledTask": True,
            "completionMessage": "Completed",
            "requiresDiskAccess": False,
            "isExclusive": False,
        }
        if self.app_name == "Radarr":
            body["isTypeExclusive"] = False
        if self.modern:
            body["isLongRunning"] = False
        body |= {"name": command.name, "trigger": command.trigger, "suppressMessages": False}
        return _compact(
            {
                "name": command.name,
                "commandName": _COMMAND_NAMES.get(
                    command.name, re.sub(r"(?<=[a-z])(?=[A-Z])", " ", command.name)
                ),
                "message": message if done else None,
                "body": body,
                "priority": "normal",
                "status": command.status,
                "result": ("successful" if command.status == "completed" else "unsuccessful")
                if self.modern and done
                else None,
                "queued": _ts(command.queued),
                "started": _ts(command.started) if command.started else None,
                "ended": _ts(command.ended) if command.ended else None,
                "duration": _duration(duration) if duration is not None else None,
                "trigger": command.trigger,
                "stateChangeTime": _ts(command.ended or command.started or command.queued),
                "sendUpdatesToClient": True,
                "updateScheduledTask": True,
                "id": command.id,
            }
        )

    async def post_command(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return _invalid([_failure("Name", "'Name' must not be empty.", name)])
        self.commands.append(body)
        fields = {k: v for k, v in body.items() if k != "name"}
        command = self._queue_command(name, fields, "manual")
        # The answer shows the command queued; it runs (and completes) afterwards.
        answer = self._command_json(command, settle=False)
        return self._created(request, f"/api/v3/command/{command.id}", answer)

    async def get_commands(self, request: web.Request) -> web.Response:
        return web.json_response([self._command_json(c) for c in self._commands.values()])

    async def get_command(self, request: web.Request) -> web.Response:
        command = self._commands.get(int(request.match_info["id"]))
        if command is None:
            return web.Response(status=404)
        return web.json_response(self._command_json(command))

    def _created(self, request: web.Request, location: str, body: JSON) -> web.Response:
        response = web.json_response(body, status=201)
        if self.modern:
            response.headers["Location"] = f"{request.url.origin()}{location}"
        return response

    def _status_common(self) -> JSON:
        return {
            "appName": self.app_name,
            "instanceName": self.instance_name or self.app_name,
            "version": self.version,
        }

    def _package(self) -> JSON:
        """What a server installed from a docker image reports about its package."""
        return {
            "packageVersion": self.version,
            "packageAuthor": "[hotio](https://github.com/hotio)",
            "packageUpdateMechanism": "docker",
        }

    def _new_file(self, quality_id: int, size: int, group: str, scene: str) -> _MediaFile:
        return _MediaFile(
            id=next(self._file_ids),
            quality_id=quality_id,
            size=size,
            added=datetime.now(UTC).replace(microsecond=0),
            release_group=group,
            scene_name=scene,
        )


def _duration(delta: timedelta) -> str:
    """A .NET ``TimeSpan`` with its seven fractional digits: ``00:00:00.3358380``."""
    seconds = delta.total_seconds()
    whole = int(seconds)
    return f"{_span(whole)}.{round((seconds - whole) * 10_000_000):07d}"


def _lookup(record: JSON, key: str) -> Any:
    for candidate in (key, key.split(".")[-1]):
        value: Any = record
        for part in candidate.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def _sorted(records: list[JSON], key: str, *, descending: bool) -> list[JSON]:
    def sort_key(record: JSON) -> tuple[int, Any]:
        value = _lookup(record, key)
        if key.endswith("timeleft") and isinstance(value, str):
            value = _span_seconds(value)
        if isinstance(value, str):
            value = value.lower()
        return (0, value) if value is not None else (1, 0)

    present = [r for r in records if _lookup(r, key) is not None]
    missing = [r for r in records if _lookup(r, key) is None]
    with contextlib.suppress(TypeError):  # mixed kinds of values: keep the server's order
        present.sort(key=sort_key, reverse=descending)
    return present + missing


def _span_seconds(text: str) -> int:
    days, _, clock = text.partition(".") if "." in text.split(":")[0] else ("0", "", text)
    hours, minutes, seconds = (int(float(p)) for p in clock.split(":"))
    return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds


# --- Radarr --------------------------------------------------------------------------------------


@dataclass
class _Movie:
    id: int
    film: CatalogueMovie
    quality_profile_id: int
    root_folder: str
    path: str
    monitored: bool
    minimum_availability: str
    tags: list[int]
    added: datetime
    add_options: JSON | None = None
    file: _MediaFile | None = None


@dataclass
class FakeRadarr(FakeArr):
    """Radarr: films looked up from the catalogue, added, queued, downloaded and searched for.

    ``version`` 3.x is the Nancy-era Radarr whose responses the recordings show; from 4.0 the
    ASP.NET Core one (empty 401 body), and from 5.0 ``GET /api/v3/wanted/missing`` exists.
    """

    version: str = "3.2.2.5080"
    root_folders: list[str] = field(default_factory=lambda: ["/movies"])
    catalogue: list[CatalogueMovie] = field(default_factory=lambda: list(MOVIES))
    # Every body a client posted to ``POST /api/v3/movie`` (refused ones included).
    added_movies: list[JSON] = field(default_factory=list)

    app_name = "Radarr"
    _layout = _RADARR_LAYOUT

    def __post_init__(self) -> None:
        super().__post_init__()
        self.movies: dict[int, _Movie] = {}
        self._movie_ids = itertools.count(1)

    # --- test controls --------------------------------------------------------------------------

    def film(self, tmdb_id: int) -> CatalogueMovie:
        return next(f for f in self.catalogue if f.tmdb_id == tmdb_id)

    def add_to_library(
        self,
        tmdb_id: int,
        *,
        monitored: bool = True,
        quality_profile_id: int = 4,
        minimum_availability: str = "released",
        downloaded: bool = False,
    ) -> int:
        """Put a catalogue film in the library without going through the API; its id."""
        movie = self._add(self.film(tmdb_id), quality_profile_id, self.root_folders[0])
        movie.monitored = monitored
        movie.minimum_availability = minimum_availability
        if downloaded:
            self.mark_downloaded(movie.id)
        return movie.id

    def mark_downloaded(
        self, movie_id: int, *, quality: str = "Bluray-1080p", size: int = 10_501_793_191
    ) -> None:
        """Give a library film its file (``hasFile``), as an import would."""
        movie = self.movies[movie_id]
        quality_id = _quality_id(_RADARR_QUALITIES, quality)
        group = "SPARKS"
        scene = f"{movie.film.title.replace(' ', '.')}.{movie.film.year}.{quality}.x264-{group}"
        movie.file = self._new_file(quality_id, size, group, scene)

    def add_queue_item(
        self,
        movie_id: int,
        *,
        size: int = 8_589_934_592,
        downloaded: float = 0.0,
        rate: int = 4_194_304,
        quality: str = "Bluray-1080p",
        protocol: str = "torrent",
    ) -> int:
        """A grab of a library film now downloading; the queue id."""
        film = self.movies[movie_id].film
        title = f"{film.title.replace(' ', '.').replace(':', '')}.{film.year}.{quality}.x264-GRP"
        item = self._new_download(
            title,
            size=size,
            downloaded=downloaded,
            rate=rate,
            quality_id=_quality_id(_RADARR_QUALITIES, quality),
            protocol=protocol,
            movie_id=movie_id,
        )
        return item.id

    def set_release_dates(
        self,
        tmdb_id: int,
        *,
        in_cinemas: date,
        digital: date | None = None,
        physical: date | None = None,
    ) -> None:
        """Move a catalogue film's releases (e.g. into this week, for the calendar)."""
        index = next(i for i, f in enumerate(self.catalogue) if f.tmdb_id == tmdb_id)
        old = self.catalogue[index]
        new = CatalogueMovie(
            **{
                **old.__dict__,
                "in_cinemas": in_cinemas,
                "digital_release": digital,
                "physical_release": physical,
            }
        )
        self.catalogue[index] = new
        for movie in self.movies.values():
            if movie.film.tmdb_id == tmdb_id:
                movie.film = new

    # --- rendering ------------------------------------------------------------------------------

    def _quality(self, quality_id: int) -> JSON:
        name, source, resolution, modifier = _RADARR_QUALITIES[quality_id]
        return {
            "id": quality_id,
            "name": name,
            "source": source,
            "resolution": resolution,
            "modifier": modifier,
        }

    def _profile_extra(self) -> JSON:
        return {
            "minFormatScore": 0,
            "cutoffFormatScore": 0,
            "formatItems": [],
            "language": {"id": 1, "name": "English"},
        }

    def _unmapped(self, root: str) -> list[JSON]:
        folder: JSON = {"name": "Alien (1979)", "path": f"{root}/Alien (1979)"}
        if self.modern:
            folder["relativePath"] = "Alien (1979)"
        return [folder]

    def _status_fields(self) -> JSON:
        status = self._status_common() | {
            "buildTime": "2021-06-20T18:54:07Z" if not self.modern else "2024-11-02T21:01:42Z",
            "isDebug": False,
            "isProduction": True,
            "isAdmin": False,
            "isUserInteractive": False,
            "startupPath": "/app/radarr/bin",
            "appData": "/config",
            "osName": "ubuntu",
            "osVersion": "20.04",
            "isNetCore": True,
        }
        if not self.modern:
            status |= {"isMono": False, "isMonoRuntime": False}
        status |= {
            "isLinux": True,
            "isOsx": False,
            "isWindows": False,
            "isDocker": True,
            "mode": "console",
            "branch": "master",
            "authentication": "forms",
        }
        if self.modern:
            status |= {"databaseType": "sqLite", "databaseVersion": "3.46.1"}
        else:
            status["sqliteVersion"] = "3.34.1"
        status |= {
            "migrationVersion": 195 if not self.modern else 241,
            "urlBase": "",
            "runtimeVersion": "5.0.5" if not self.modern else "6.0.35",
            "runtimeName": "netCore",
            "startTime": _ts(self.started_at),
            **self._package(),
        }
        return status

    def _ratings(self, film: CatalogueMovie) -> JSON:
        def child(votes: int, value: float) -> JSON:
            return {"votes": votes, "value": value, "type": "user"}

        return {
            "imdb": child(*film.imdb_rating),
            "tmdb": child(*film.tmdb_rating),
            "metacritic": child(0, 0),
            "rottenTomatoes": child(0, 0),
        }

    def _file_json(self, movie: _Movie) -> JSON | None:
        if movie.file is None:
            return None
        f = movie.file
        name = f"{movie.film.folder}.mkv"
        quality = self._quality(f.quality_id)
        return {
            "movieId": movie.id,
            "relativePath": name,
            "path": f"{movie.path}/{name}",
            "size": f.size,
            "dateAdded": _ts(f.added),
            "sceneName": f.scene_name,
            "indexerFlags": 0,
            "quality": {
                "quality": quality,
                "revision": {"version": 1, "real": 0, "isRepack": False},
            },
            "mediaInfo": {
                "audioBitrate": 640000,
                "audioChannels": 5.1,
                "audioCodec": "AC3",
                "audioLanguages": "eng",
                "audioStreamCount": 1,
                "videoBitDepth": 8,
                "videoBitrate": 0,
                "videoCodec": "x264",
                "videoDynamicRangeType": "",
                "videoFps": 23.976,
                "resolution": f"1920x{800 if quality['resolution'] >= 1080 else 536}",
                "runTime": f"{movie.film.runtime // 60}:{movie.film.runtime % 60:02d}:00",
                "scanType": "Progressive",
                "subtitles": "eng",
            },
            "originalFilePath": f"{f.scene_name}/{f.scene_name}.mkv",
            "qualityCutoffNotMet": False,
            "languages": [{"id": 1, "name": "English"}],
            "releaseGroup": f.release_group,
            "edition": "",
            "id": f.id,
        }

    def _movie_json(self, film: CatalogueMovie, movie: _Movie | None) -> JSON:
        today = datetime.now(UTC).date()
        released = film.released()
        if released and released <= today:
            status = "released"
        elif film.in_cinemas <= today:
            status = "inCinemas"
        else:
            status = "announced"
        availability = movie.minimum_availability if movie else "tba"
        available = {
            "tba": True,
            "announced": True,
            "inCinemas": film.in_cinemas <= today,
        }.get(availability, status == "released")
        remote = f"https://image.tmdb.org/t/p/original/{film.tmdb_id}"
        images = []
        for kind in ("poster", "fanart"):
            local = f"/MediaCover/{movie.id}/{kind}.jpg" if movie else f"{remote}-{kind}.jpg"
            images.append({"coverType": kind, "url": local, "remoteUrl": f"{remote}-{kind}.jpg"})
        collection: JSON | None = None
        if film.collection:
            name, coll_id = film.collection
            collection = (
                {"title": name, "tmdbId": coll_id}
                if self.modern
                else {"name": name, "tmdbId": coll_id, "images": []}
            )
        size = movie.file.size if movie and movie.file else 0
        record = {
            "title": film.title,
            "originalTitle": film.original_title or film.title,
            "originalLanguage": {
                "id": film.original_language[0],
                "name": film.original_language[1],
            },
            "alternateTitles": [],
            "secondaryYearSourceId": 0,
            "sortTitle": _sort_title(film.title),
            "sizeOnDisk": size,
            "status": status,
            "overview": film.overview,
            "inCinemas": _ts(_day(film.in_cinemas)),
            "physicalRelease": _ts(_day(film.physical_release)) if film.physical_release else None,
            "digitalRelease": _ts(_day(film.digital_release)) if film.digital_release else None,
            "images": images,
            "website": "",
            "year": film.year,
            "hasFile": bool(movie and movie.file),
            "youTubeTrailerId": film.youtube_trailer_id,
            "studio": film.studio,
            "path": movie.path if movie else None,
            "qualityProfileId": movie.quality_profile_id if movie else 0,
            "monitored": movie.monitored if movie else False,
            "minimumAvailability": availability,
            "isAvailable": available,
            "folderName": movie.path if movie else film.folder,
            "runtime": film.runtime,
            "cleanTitle": _clean_title(film.title),
            "imdbId": film.imdb_id,
            "tmdbId": film.tmdb_id,
            "titleSlug": str(film.tmdb_id),
            "rootFolderPath": movie.root_folder if movie else None,
            "certification": film.certification,
            "genres": list(film.genres),
            "tags": list(movie.tags) if movie else [],
            "added": _ts(movie.added) if movie else "0001-01-01T00:00:00Z",
            "addOptions": movie.add_options if movie else None,
            "ratings": self._ratings(film),
            "movieFile": self._file_json(movie) if movie else None,
            "collection": collection,
        }
        if self.modern:
            record |= {
                "movieFileId": movie.file.id if movie and movie.file else 0,
                "popularity": round(film.tmdb_rating[0] / 300, 3),
                "statistics": {
                    "movieFileCount": int(bool(movie and movie.file)),
                    "sizeOnDisk": size,
                    "releaseGroups": [movie.file.release_group] if movie and movie.file else [],
                },
            }
        record["id"] = movie.id if movie else None
        return _compact(record)

    def _library_json(self, movie: _Movie) -> JSON:
        return self._movie_json(movie.film, movie)

    def _queue_record(self, item: Download, request: web.Request) -> JSON:
        movie = self.movies.get(item.movie_id or 0)
        record: JSON = {"movieId": item.movie_id}
        if movie is not None and _flag(request, "includeMovie"):
            record["movie"] = self._library_json(movie)
        record["languages"] = [{"id": 1, "name": "English"}]
        shared = self._download_fields(item)
        record["quality"] = shared.pop("quality")
        record["customFormats"] = []
        if self.modern:
            record["customFormatScore"] = 0
            record["added"] = _ts(item.added)
        record |= shared
        record["id"] = item.id
        return _compact(record)

    def _imported(self, item: Download) -> None:
        if item.movie_id in self.movies:
            self.mark_downloaded(item.movie_id, quality=_RADARR_QUALITIES[item.quality_id][0])

    # --- the API --------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        self._common_routes(app)
        get = app.router.add_get
        get("/api/v3/movie", self.get_movies, allow_head=False)
        app.router.add_post("/api/v3/movie", self.post_movie)
        get("/api/v3/movie/lookup", self.lookup, allow_head=False)
        get("/api/v3/movie/lookup/tmdb", self.lookup_tmdb, allow_head=False)
        get(r"/api/v3/movie/{id:\d+}", self.get_movie, allow_head=False)
        app.router.add_put(r"/api/v3/movie/{id:\d+}", self.put_movie)
        get("/api/v3/calendar", self.calendar, allow_head=False)
        if self.major >= 5:
            get("/api/v3/wanted/missing", self.wanted_missing, allow_head=False)

    def _add(self, film: CatalogueMovie, profile: int, root: str) -> _Movie:
        movie = _Movie(
            id=next(self._movie_ids),
            film=film,
            quality_profile_id=profile,
            root_folder=root,
            path=f"{root.rstrip('/')}/{film.folder}",
            monitored=False,
            minimum_availability="released",
            tags=[],
            added=datetime.now(UTC).replace(microsecond=0),
        )
        self.movies[movie.id] = movie
        return movie

    async def get_movies(self, request: web.Request) -> web.Response:
        tmdb_id = _int_param(request, "tmdbId")
        movies = [m for m in self.movies.values() if tmdb_id is None or m.film.tmdb_id == tmdb_id]
        return web.json_response([self._library_json(m) for m in movies])

    async def get_movie(self, request: web.Request) -> web.Response:
        movie = self.movies.get(int(request.match_info["id"]))
        if movie is None:
            return web.Response(status=404)
        return web.json_response(self._library_json(movie))

    def _search(self, term: str) -> list[CatalogueMovie]:
        term = term.strip()
        prefix, _, value = term.partition(":")
        if value and prefix.lower() in ("tmdb", "tmdbid"):
            return [f for f in self.catalogue if str(f.tmdb_id) == value.strip()]
        if value and prefix.lower() in ("imdb", "imdbid"):
            return [f for f in self.catalogue if f.imdb_id == value.strip().lower()]
        words = _words(term)
        if not words:
            return []
        return [f for f in self.catalogue if all(w in _words(f.title) for w in words)]

    async def lookup(self, request: web.Request) -> web.Response:
        by_tmdb = {m.film.tmdb_id: m for m in self.movies.values()}
        return web.json_response(
            [
                self._movie_json(f, by_tmdb.get(f.tmdb_id))
                for f in self._search(request.query.get("term", ""))
            ]
        )

    async def lookup_tmdb(self, request: web.Request) -> web.Response:
        tmdb_id = _int_param(request, "tmdbId") or 0
        film = next((f for f in self.catalogue if f.tmdb_id == tmdb_id), None)
        if film is None:
            return _message(
                404,
                f"Movie with TmdbId {tmdb_id} was not found, it may have been removed from TMDb",
            )
        return web.json_response(self._movie_json(film, None))

    async def post_movie(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.added_movies.append(body)
        tmdb_id = body.get("tmdbId") or 0
        taken = any(m.film.tmdb_id == tmdb_id for m in self.movies.values())
        failures = self._validate_add(body)
        if tmdb_id <= 0:
            failures.append(
                _failure(
                    "TmdbId",
                    "'Tmdb Id' must not be empty.",
                    tmdb_id,
                    "NotEmptyValidator",
                    "Tmdb Id",
                )
            )
        elif taken:
            failures.append(
                _failure(
                    "TmdbId",
                    "This movie has already been added",
                    tmdb_id,
                    "MovieExistsValidator",
                    "Tmdb Id",
                )
            )
        if failures:
            return _invalid(failures)
        film = next((f for f in self.catalogue if f.tmdb_id == tmdb_id), None)
        if film is None:
            return _invalid([_failure("TmdbId", "A movie with this ID was not found", tmdb_id)])
        root = body.get("rootFolderPath") or body["path"].rsplit("/", 1)[0]
        movie = self._add(film, body["qualityProfileId"], root)
        if body.get("path"):
            movie.path = body["path"]
        movie.monitored = bool(body.get("monitored", False))
        movie.minimum_availability = body.get("minimumAvailability") or "released"
        movie.tags = [int(t) for t in body.get("tags") or []]
        movie.add_options = body.get("addOptions")
        self._queue_command("RefreshMovie", {"movieIds": [movie.id]}, "unspecified")
        if (movie.add_options or {}).get("searchForMovie"):
            self._queue_command("MoviesSearch", {"movieIds": [movie.id]}, "unspecified")
        return self._created(request, f"/api/v3/movie/{movie.id}", self._library_json(movie))

    async def put_movie(self, request: web.Request) -> web.Response:
        movie = self.movies.get(int(request.match_info["id"]))
        if movie is None:
            return web.Response(status=404)
        body = await self._body(request)
        if "monitored" in body:
            movie.monitored = bool(body["monitored"])
        if body.get("qualityProfileId"):
            failures = self._validate_profile(body)
            if failures:
                return _invalid(failures)
            movie.quality_profile_id = body["qualityProfileId"]
        if body.get("minimumAvailability"):
            movie.minimum_availability = body["minimumAvailability"]
        if body.get("tags") is not None:
            movie.tags = [int(t) for t in body["tags"]]
        if body.get("path"):
            movie.path = body["path"]
        return web.json_response(self._library_json(movie), status=202)

    async def calendar(self, request: web.Request) -> web.Response:
        start, end = _window(request)
        unmonitored = _flag(request, "unmonitored")
        found = []
        for movie in self.movies.values():
            film = movie.film
            dates = [d for d in (film.in_cinemas, film.physical_release, film.digital_release) if d]
            if not (movie.monitored or unmonitored):
                continue
            if any(start <= _day(d) <= end for d in dates):
                found.append(self._library_json(movie))
        return web.json_response(found)

    async def wanted_missing(self, request: web.Request) -> web.Response:
        monitored = _flag(request, "monitored", True)
        records = [
            self._library_json(m)
            for m in self.movies.values()
            if m.file is None and m.monitored == monitored
        ]
        return web.json_response(
            self._page(request, records, "movieMetadata.sortTitle", "ascending")
        )


# --- Sonarr --------------------------------------------------------------------------------------


@dataclass
class _Episode:
    id: int
    series_id: int
    season: int
    number: int
    title: str
    air_date: date
    air_utc: datetime
    monitored: bool
    file: _MediaFile | None = None


@dataclass
class _Series:
    id: int
    show: CatalogueSeries
    quality_profile_id: int
    language_profile_id: int
    root_folder: str
    path: str
    monitored: bool
    season_folder: bool
    series_type: str
    tags: list[int]
    added: datetime
    season_monitored: dict[int, bool]
    add_options: JSON | None = None


@dataclass
class FakeSonarr(FakeArr):
    """Sonarr: series looked up from the catalogue, added with their seasons and episodes, queued,
    downloaded and searched for.

    ``version`` 3.x (the default) is Sonarr 3 with language profiles; 4.x is Sonarr 4, whose
    ``/api/v3/languageprofile`` only answers the deprecated placeholder.
    """

    version: str = "3.0.10.1567"
    root_folders: list[str] = field(default_factory=lambda: ["/tv"])
    catalogue: list[CatalogueSeries] = field(default_factory=lambda: list(SERIES))
    # Every body a client posted to ``POST /api/v3/series`` (refused ones included).
    added_series: list[JSON] = field(default_factory=list)

    app_name = "Sonarr"
    _layout = _SONARR_LAYOUT

    def __post_init__(self) -> None:
        super().__post_init__()
        self.series: dict[int, _Series] = {}
        self.episodes: dict[int, _Episode] = {}
        self._series_ids = itertools.count(1)
        self._episode_ids = itertools.count(1)

    # --- test controls --------------------------------------------------------------------------

    def show(self, tvdb_id: int) -> CatalogueSeries:
        return next(s for s in self.catalogue if s.tvdb_id == tvdb_id)

    def add_to_library(
        self,
        tvdb_id: int,
        *,
        monitored_seasons: Iterable[int] | None = None,
        quality_profile_id: int = 4,
        downloaded_seasons: Iterable[int] = (),
    ) -> int:
        """Put a catalogue series in the library (all seasons monitored unless
        ``monitored_seasons`` says otherwise); its id."""
        show = self.show(tvdb_id)
        wanted = (
            set(monitored_seasons)
            if monitored_seasons is not None
            else set(range(1, len(show.seasons) + 1))
        )
        series = self._add(show, quality_profile_id, 1, self.root_folders[0], wanted)
        series.monitored = True
        series.season_folder = True
        for episode in self._episodes_of(series.id):
            episode.monitored = episode.season in wanted
            if episode.season in set(downloaded_seasons):
                self.mark_downloaded(episode.id)
        return series.id

    def episode_id(self, series_id: int, season: int, number: int) -> int:
        return next(
            e.id
            for e in self.episodes.values()
            if e.series_id == series_id and e.season == season and e.number == number
        )

    def mark_downloaded(
        self, episode_id: int, *, quality: str = "WEBDL-1080p", size: int = 1_546_188_226
    ) -> None:
        """Give an episode its file (``hasFile``), as an import would."""
        episode = self.episodes[episode_id]
        show = self.series[episode.series_id].show
        group = "NTb"
        scene = (
            f"{show.title.replace(' ', '.')}.S{episode.season:02d}E{episode.number:02d}."
            f"{quality.split('-')[-1]}.{quality.split('-')[0]}-{group}"
        )
        episode.file = self._new_file(_quality_id(_SONARR_QUALITIES, quality), size, group, scene)

    def set_air_date(self, episode_id: int, when: datetime) -> None:
        """Move an episode's airing (e.g. into this week, for the calendar)."""
        episode = self.episodes[episode_id]
        episode.air_utc = when.astimezone(UTC)
        show = self.series[episode.series_id].show
        episode.air_date = (episode.air_utc - timedelta(hours=show.utc_offset)).date()

    def add_queue_item(
        self,
        episode_id: int,
        *,
        size: int = 1_546_188_226,
        downloaded: float = 0.0,
        rate: int = 2_097_152,
        quality: str = "WEBDL-1080p",
        protocol: str = "torrent",
    ) -> int:
        """A grab of a library episode now downloading; the queue id."""
        episode = self.episodes[episode_id]
        show = self.series[episode.series_id].show
        title = (
            f"{show.title.replace(' ', '.')}.S{episode.season:02d}E{episode.number:02d}."
            f"{quality.split('-')[-1]}.{quality.split('-')[0]}.x264-GRP"
        )
        item = self._new_download(
            title,
            size=size,
            downloaded=downloaded,
            rate=rate,
            quality_id=_quality_id(_SONARR_QUALITIES, quality),
            protocol=protocol,
            series_id=episode.series_id,
            episode_id=episode_id,
        )
        return item.id

    # --- rendering ------------------------------------------------------------------------------

    def _quality(self, quality_id: int) -> JSON:
        name, source, resolution = _SONARR_QUALITIES[quality_id]
        return {"id": quality_id, "name": name, "source": source, "resolution": resolution}

    def _profile_extra(self) -> JSON:
        if not self.modern:
            return {}
        return {"minFormatScore": 0, "cutoffFormatScore": 0, "formatItems": []}

    def _unmapped(self, root: str) -> list[JSON]:
        folder: JSON = {"name": "Firefly", "path": f"{root}/Firefly"}
        if self.modern:
            folder["relativePath"] = "Firefly"
        return [folder]

    def _status_fields(self) -> JSON:
        if self.modern:
            return self._status_common() | {
                "buildTime": "2025-01-05T19:56:10Z",
                "isDebug": False,
                "isProduction": True,
                "isAdmin": False,
                "isUserInteractive": False,
                "startupPath": "/app/sonarr/bin",
                "appData": "/config",
                "osName": "ubuntu",
                "osVersion": "22.04",
                "isNetCore": True,
                "isLinux": True,
                "isOsx": False,
                "isWindows": False,
                "isDocker": True,
                "mode": "console",
                "branch": "main",
                "authentication": "forms",
                "sqliteVersion": "3.46.1",
                "migrationVersion": 215,
                "urlBase": "",
                "runtimeVersion": "6.0.35",
                "runtimeName": ".NET",
                "startTime": _ts(self.started_at),
                **self._package(),
                "databaseType": "sqLite",
                "databaseVersion": "3.46.1",
            }
        # Sonarr 3 on mono, in the recorded form (no instanceName yet).
        return {
            "appName": "Sonarr",
            "version": self.version,
            "buildTime": "2023-01-26T23:14:15Z",
            "isDebug": False,
            "isProduction": True,
            "isAdmin": False,
            "isUserInteractive": False,
            "startupPath": "/app/sonarr/bin",
            "appData": "/config",
            "osName": "ubuntu",
            "osVersion": "20.04",
            "isMonoRuntime": True,
            "isMono": True,
            "isLinux": True,
            "isOsx": False,
            "isWindows": False,
            "mode": "console",
            "branch": "main",
            "authentication": "forms",
            "sqliteVersion": "3.31.1",
            "urlBase": "",
            "runtimeVersion": "6.12.0.182",
            "runtimeName": "mono",
            "startTime": _ts(self.started_at),
            **self._package(),
        }

    def _episodes_of(self, series_id: int) -> list[_Episode]:
        return sorted(
            (e for e in self.episodes.values() if e.series_id == series_id),
            key=lambda e: (e.season, e.number),
        )

    def _stats(self, episodes: list[_Episode]) -> JSON:
        now = datetime.now(UTC)
        files = [e for e in episodes if e.file]
        counted = [e for e in episodes if e.file or (e.monitored and e.air_utc <= now)]
        aired = [e.air_utc for e in episodes if e.air_utc <= now]
        upcoming = [e.air_utc for e in episodes if e.air_utc > now]
        return _compact(
            {
                "nextAiring": _ts(min(upcoming)) if upcoming else None,
                "previousAiring": _ts(max(aired)) if aired else None,
                "episodeFileCount": len(files),
                "episodeCount": len(counted),
                "totalEpisodeCount": len(episodes),
                "sizeOnDisk": sum(e.file.size for e in files if e.file),
                "percentOfEpisodes": round(100 * len(files) / len(counted), 4) if counted else 0,
            }
        )

    def _series_json(
        self, show: CatalogueSeries, series: _Series | None, *, lookup: bool = False
    ) -> JSON:
        """A series resource; ``lookup`` adds what lookups add (``remotePoster``, ``folder``)."""
        remote = "https://artworks.thetvdb.com/banners"
        remotes = {
            "banner": f"{remote}/graphical/{show.tvdb_id}-g.jpg",
            "poster": f"{remote}/posters/{show.tvdb_id}-1.jpg",
            "fanart": f"{remote}/fanart/original/{show.tvdb_id}-1.jpg",
        }
        images = [
            {
                "coverType": kind,
                "url": f"/MediaCover/{series.id}/{kind}.jpg" if series else url,
                "remoteUrl": url,
            }
            for kind, url in remotes.items()
        ]
        episodes = self._episodes_of(series.id) if series else []
        seasons = []
        for number in range(1, len(show.seasons) + 1):
            season: JSON = {
                "seasonNumber": number,
                "monitored": series.season_monitored.get(number, False) if series else True,
            }
            if series:
                season["statistics"] = self._stats([e for e in episodes if e.season == number])
            seasons.append(season)
        stats = self._stats(episodes)
        if series is None:
            statistics: JSON = {
                "seasonCount": len(show.seasons),
                "episodeFileCount": 0,
                "episodeCount": 0,
                "totalEpisodeCount": 0,
                "sizeOnDisk": 0,
                "percentOfEpisodes": 0,
            }
        else:
            statistics = {
                "seasonCount": len(show.seasons),
                **{k: v for k, v in stats.items() if not k.endswith("Airing")},
            }
        first_aired = _day(show.seasons[0][0])
        record: JSON = {
            "title": show.title,
            "sortTitle": _sort_title(show.title),
            "status": "ended" if show.ended else "continuing",
            "ended": show.ended,
            "overview": show.overview,
            "nextAiring": stats.get("nextAiring"),
            "previousAiring": stats.get("previousAiring"),
            "network": show.network,
            "airTime": show.air_time,
            "images": images,
        }
        if lookup:
            record["remotePoster"] = remotes["poster"]
        if self.modern:
            record["originalLanguage"] = {"id": 1, "name": "English"}
        record |= {
            "seasons": seasons,
            "year": show.year,
            "path": series.path if series else None,
            "qualityProfileId": series.quality_profile_id if series else 0,
            "languageProfileId": series.language_profile_id if series else 0,
            "seasonFolder": series.season_folder if series else False,
            "monitored": series.monitored if series else False,
            "useSceneNumbering": False,
            "runtime": show.runtime,
            "tvdbId": show.tvdb_id,
            "tvRageId": show.tv_rage_id,
            "tvMazeId": show.tv_maze_id,
            "firstAired": _ts(first_aired),
            "seriesType": series.series_type if series else "standard",
            "cleanTitle": _clean_title(show.title),
            "imdbId": show.imdb_id,
            "titleSlug": _slug(show.title),
            "rootFolderPath": series.root_folder if series else None,
            "folder": _folder_name(show.title) if lookup else None,
            "certification": show.certification,
            "genres": list(show.genres),
            "tags": list(series.tags) if series else [],
            "added": _ts(series.added) if series else "0001-01-01T00:00:00Z",
            "addOptions": series.add_options if series else None,
            "ratings": {"votes": show.rating[0], "value": show.rating[1]},
            "statistics": statistics,
        }
        if self.modern:
            record |= {"tmdbId": show.tmdb_id, "monitorNewItems": "all"}
        record["id"] = series.id if series else None
        return _compact(record)

    def _library_json(self, series: _Series) -> JSON:
        return self._series_json(series.show, series)

    def _episode_json(
        self, episode: _Episode, *, with_series: bool = False, with_file: bool = False
    ) -> JSON:
        series = self.series[episode.series_id]
        record: JSON = {
            "seriesId": episode.series_id,
            "episodeFileId": episode.file.id if episode.file else 0,
            "seasonNumber": episode.season,
            "episodeNumber": episode.number,
            "title": episode.title,
            "airDate": episode.air_date.isoformat(),
            "airDateUtc": _ts(episode.air_utc),
        }
        if self.modern:
            record["runtime"] = series.show.runtime
        if with_file and episode.file:
            f = episode.file
            name = f"Season {episode.season:02d}/{f.scene_name}.mkv"
            record["episodeFile"] = {
                "seriesId": episode.series_id,
                "seasonNumber": episode.season,
                "relativePath": name,
                "path": f"{series.path}/{name}",
                "size": f.size,
                "dateAdded": _ts(f.added),
                "sceneName": f.scene_name,
                "releaseGroup": f.release_group,
                "quality": {
                    "quality": self._quality(f.quality_id),
                    "revision": {"version": 1, "real": 0, "isRepack": False},
                },
                "qualityCutoffNotMet": False,
                "id": f.id,
            }
        record |= {
            "hasFile": episode.file is not None,
            "monitored": episode.monitored,
            "unverifiedSceneNumbering": False,
        }
        if with_series:
            record["series"] = self._library_json(series)
        record["id"] = episode.id
        return record

    def _queue_record(self, item: Download, request: web.Request) -> JSON:
        episode = self.episodes.get(item.episode_id or 0)
        record: JSON = {"seriesId": item.series_id, "episodeId": item.episode_id}
        if self.modern:
            record["seasonNumber"] = episode.season if episode else None
        if episode is not None and _flag(request, "includeSeries"):
            record["series"] = self._library_json(self.series[episode.series_id])
        if episode is not None and _flag(request, "includeEpisode"):
            record["episode"] = self._episode_json(episode)
        english = {"id": 1, "name": "English"}
        shared = self._download_fields(item)
        if self.modern:
            record |= {
                "languages": [english],
                "quality": shared.pop("quality"),
                "customFormats": [],
                "customFormatScore": 0,
                "added": _ts(item.added),
            }
        else:
            record |= {"language": english, "quality": shared.pop("quality")}
        record |= shared
        if self.modern:
            record["episodeHasFile"] = bool(episode and episode.file)
        record["id"] = item.id
        return _compact(record)

    def _imported(self, item: Download) -> None:
        if item.episode_id in self.episodes:
            self.mark_downloaded(item.episode_id, quality=_SONARR_QUALITIES[item.quality_id][0])

    # --- the API --------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        self._common_routes(app)
        get = app.router.add_get
        get("/api/v3/languageprofile", self.get_language_profiles, allow_head=False)
        get("/api/v3/series", self.get_all_series, allow_head=False)
        app.router.add_post("/api/v3/series", self.post_series)
        get("/api/v3/series/lookup", self.lookup, allow_head=False)
        get(r"/api/v3/series/{id:\d+}", self.get_series, allow_head=False)
        app.router.add_put(r"/api/v3/series/{id:\d+}", self.put_series)
        get("/api/v3/episode", self.get_episodes, allow_head=False)
        get("/api/v3/calendar", self.calendar, allow_head=False)
        get("/api/v3/wanted/missing", self.wanted_missing, allow_head=False)

    async def get_language_profiles(self, request: web.Request) -> web.Response:
        def profile(pid: int, name: str, allowed: set[int]) -> JSON:
            return {
                "name": name,
                "upgradeAllowed": True,
                "cutoff": {"id": 1, "name": "English"},
                "languages": [
                    {"language": {"id": lid, "name": lname}, "allowed": lid in allowed}
                    for lid, lname in _LANGUAGES
                    if not self.modern or lid == 1
                ],
                "id": pid,
            }

        if self.modern:
            # Sonarr 4 dropped language profiles; the endpoint answers one placeholder.
            response = web.json_response([profile(1, "Deprecated", {1})])
            response.headers["Deprecation"] = "true"
            return response
        return web.json_response([profile(1, "English", {1}), profile(2, "Any", {0, 1, 2, 3})])

    def _add(
        self,
        show: CatalogueSeries,
        profile: int,
        language_profile: int,
        root: str,
        monitored_seasons: set[int],
    ) -> _Series:
        series = _Series(
            id=next(self._series_ids),
            show=show,
            quality_profile_id=profile,
            language_profile_id=language_profile,
            root_folder=root,
            path=f"{root.rstrip('/')}/{_folder_name(show.title)}",
            monitored=False,
            season_folder=False,
            series_type="standard",
            tags=[],
            added=datetime.now(UTC).replace(microsecond=0),
            season_monitored={n: n in monitored_seasons for n in range(1, len(show.seasons) + 1)},
        )
        self.series[series.id] = series
        for number in range(1, len(show.seasons) + 1):
            for n, (local, utc) in enumerate(show.air_dates(number), start=1):
                episode = _Episode(
                    id=next(self._episode_ids),
                    series_id=series.id,
                    season=number,
                    number=n,
                    title=show.episode_title(number, n),
                    air_date=local,
                    air_utc=utc,
                    monitored=number in monitored_seasons,
                )
                self.episodes[episode.id] = episode
        return series

    async def get_all_series(self, request: web.Request) -> web.Response:
        tvdb_id = _int_param(request, "tvdbId")
        found = [s for s in self.series.values() if tvdb_id is None or s.show.tvdb_id == tvdb_id]
        records = [self._library_json(s) for s in found]
        if not self.modern:
            # Sonarr 3 links the root folder only when one series is asked for.
            for record in records:
                record.pop("rootFolderPath", None)
        return web.json_response(records)

    async def get_series(self, request: web.Request) -> web.Response:
        series = self.series.get(int(request.match_info["id"]))
        if series is None:
            return web.Response(status=404)
        return web.json_response(self._library_json(series))

    def _search(self, term: str) -> list[CatalogueSeries]:
        prefix, _, value = term.strip().partition(":")
        if value and prefix.lower() in ("tvdb", "tvdbid"):
            return [s for s in self.catalogue if str(s.tvdb_id) == value.strip()]
        words = _words(term)
        if not words:
            return []
        return [s for s in self.catalogue if all(w in _words(s.title) for w in words)]

    async def lookup(self, request: web.Request) -> web.Response:
        by_tvdb = {s.show.tvdb_id: s for s in self.series.values()}
        return web.json_response(
            [
                self._series_json(show, by_tvdb.get(show.tvdb_id), lookup=True)
                for show in self._search(request.query.get("term", ""))
            ]
        )

    async def post_series(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.added_series.append(body)
        tvdb_id = body.get("tvdbId") or 0
        taken = any(s.show.tvdb_id == tvdb_id for s in self.series.values())
        failures = self._validate_add(body)
        if not body.get("title"):
            failures.append(
                _failure(
                    "Title", "'Title' must not be empty.", body.get("title"), "NotEmptyValidator"
                )
            )
        if tvdb_id <= 0:
            failures.append(
                _failure(
                    "TvdbId",
                    "'Tvdb Id' must be greater than '0'.",
                    tvdb_id,
                    "GreaterThanValidator",
                    "Tvdb Id",
                )
            )
        elif taken:
            failures.append(
                _failure(
                    "TvdbId",
                    "This series has already been added",
                    tvdb_id,
                    "SeriesExistsValidator",
                    "Tvdb Id",
                )
            )
        if failures:
            return _invalid(failures)
        show = next((s for s in self.catalogue if s.tvdb_id == tvdb_id), None)
        if show is None:
            return _invalid([_failure("TvdbId", "A series with this ID was not found", tvdb_id)])
        requested = {
            s.get("seasonNumber"): bool(s.get("monitored"))
            for s in body.get("seasons") or []
            if isinstance(s, dict)
        }
        wanted = {n for n in range(1, len(show.seasons) + 1) if requested.get(n, True)}
        root = body.get("rootFolderPath") or body["path"].rsplit("/", 1)[0]
        # Sonarr 3 takes the first language profile when none is given.
        series = self._add(
            show, body["qualityProfileId"], body.get("languageProfileId") or 1, root, wanted
        )
        if body.get("path"):
            series.path = body["path"]
        series.monitored = bool(body.get("monitored", False))
        series.season_folder = bool(body.get("seasonFolder", False))
        series.series_type = body.get("seriesType") or "standard"
        series.tags = [int(t) for t in body.get("tags") or []]
        series.add_options = body.get("addOptions")
        monitor = (series.add_options or {}).get("monitor")
        if monitor and monitor != "unknown":
            self._apply_monitor(series, monitor)
        self._queue_command("RefreshSeries", {"seriesId": series.id}, "unspecified")
        if (series.add_options or {}).get("searchForMissingEpisodes"):
            self._queue_command("MissingEpisodeSearch", {"seriesId": series.id}, "unspecified")
        return self._created(request, f"/api/v3/series/{series.id}", self._library_json(series))

    def _apply_monitor(self, series: _Series, monitor: str) -> None:
        """``addOptions.monitor``: which episodes start monitored."""
        now = datetime.now(UTC)
        episodes = self._episodes_of(series.id)
        last = len(series.show.seasons)
        rules: dict[str, Callable[[_Episode], bool]] = {
            "all": lambda e: True,
            "future": lambda e: e.air_utc > now,
            "missing": lambda e: e.file is None,
            "existing": lambda e: e.file is not None,
            "firstSeason": lambda e: e.season == 1,
            "latestSeason": lambda e: e.season == last,
            "lastSeason": lambda e: e.season == last,
            "pilot": lambda e: e.season == 1 and e.number == 1,
            "none": lambda e: False,
        }
        rule = rules.get(monitor, lambda e: True)
        for episode in episodes:
            episode.monitored = rule(episode)
        for number in series.season_monitored:
            series.season_monitored[number] = any(
                e.monitored for e in episodes if e.season == number
            ) or (monitor in ("all", "future") and number == last)

    async def put_series(self, request: web.Request) -> web.Response:
        series = self.series.get(int(request.match_info["id"]))
        if series is None:
            return web.Response(status=404)
        body = await self._body(request)
        if "monitored" in body:
            series.monitored = bool(body["monitored"])
        if body.get("qualityProfileId"):
            failures = self._validate_profile(body)
            if failures:
                return _invalid(failures)
            series.quality_profile_id = body["qualityProfileId"]
        if "seasonFolder" in body:
            series.season_folder = bool(body["seasonFolder"])
        if body.get("tags") is not None:
            series.tags = [int(t) for t in body["tags"]]
        if body.get("path"):
            series.path = body["path"]
        # A season whose monitoring changed takes its episodes with it, as in Sonarr.
        for season in body.get("seasons") or []:
            number = season.get("seasonNumber")
            if number in series.season_monitored and "monitored" in season:
                wanted = bool(season["monitored"])
                if series.season_monitored[number] != wanted:
                    series.season_monitored[number] = wanted
                    for episode in self._episodes_of(series.id):
                        if episode.season == number:
                            episode.monitored = wanted
        return web.json_response(self._library_json(series), status=202)

    async def get_episodes(self, request: web.Request) -> web.Response:
        series_id = _int_param(request, "seriesId")
        ids = _int_list(request, "episodeIds")
        if series_id is None and not ids:
            return _message(400, "seriesId or episodeIds must be provided")
        season = _int_param(request, "seasonNumber")
        if ids:
            episodes = [self.episodes[i] for i in ids if i in self.episodes]
        else:
            episodes = self._episodes_of(series_id or 0)
        if season is not None:
            episodes = [e for e in episodes if e.season == season]
        return web.json_response(
            [
                self._episode_json(
                    e,
                    with_series=_flag(request, "includeSeries"),
                    with_file=_flag(request, "includeEpisodeFile"),
                )
                for e in episodes
            ]
        )

    async def calendar(self, request: web.Request) -> web.Response:
        start, end = _window(request)
        unmonitored = _flag(request, "unmonitored")
        found = [
            e
            for e in self.episodes.values()
            if start <= e.air_utc <= end
            and (unmonitored or (e.monitored and self.series[e.series_id].monitored))
        ]
        found.sort(key=lambda e: e.air_utc)
        return web.json_response(
            [
                self._episode_json(
                    e,
                    with_series=_flag(request, "includeSeries"),
                    with_file=_flag(request, "includeEpisodeFile"),
                )
                for e in found
            ]
        )

    async def wanted_missing(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        monitored = _flag(request, "monitored", True)
        include_series = _flag(request, "includeSeries")
        records = [
            self._episode_json(e, with_series=include_series)
            for e in self.episodes.values()
            if e.file is None
            and e.air_utc <= now
            and (e.monitored and self.series[e.series_id].monitored) == monitored
        ]
        return web.json_response(self._page(request, records, "airDateUtc", "descending"))


def _window(request: web.Request) -> tuple[datetime, datetime]:
    """``start``/``end`` of a calendar request (default: today and the next two days)."""
    today = _day(datetime.now(UTC).date())
    start = _parse_time(request.query.get("start")) or today
    end = _parse_time(request.query.get("end")) or today + timedelta(days=2)
    return start, end


def _quality_id(table: dict[int, Any], name: str) -> int:
    for quality_id, entry in table.items():
        if entry[0] == name:
            return quality_id
    raise KeyError(name)
