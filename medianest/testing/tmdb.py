"""A fake TMDB (The Movie Database API v3): search, details, external ids and lists.

Speaks the ``/3/...`` paths TMDB serves, authenticated as TMDB does: an
``Authorization: Bearer <read access token>`` header, or the older ``api_key=`` query parameter.
A wrong or missing key gets TMDB's 401 (``status_code`` 7); an unknown id or path its 404
(``status_code`` 34); a page outside 1..500 its 400 (``status_code`` 22); and, after
:meth:`FakeTMDB.rate_limit`, its 429 with ``Retry-After`` (``status_code`` 25).

Seeded with a small real catalogue: The Matrix (603, imdb tt0133093), Inception, Interstellar,
Dune: Part Two, Breaking Bad (1396, tvdb 81189, five seasons), Game of Thrones, The Last of
Us, two people, and two films released in the coming weeks for ``/3/movie/upcoming``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .base import FakeServer

PAGE_SIZE = 20
IMAGE_SIZES = {
    "backdrop_sizes": ["w300", "w780", "w1280", "original"],
    "logo_sizes": ["w45", "w92", "w154", "w185", "w300", "w500", "original"],
    "poster_sizes": ["w92", "w154", "w185", "w342", "w500", "w780", "original"],
    "profile_sizes": ["w45", "w185", "h632", "original"],
    "still_sizes": ["w92", "w185", "w300", "original"],
}
CHANGE_KEYS = [
    "adult", "air_date", "also_known_as", "alternative_titles", "biography", "birthday",
    "budget", "cast", "certifications", "character_names", "created_by", "crew", "deathday",
    "episode", "episode_number", "episode_run_time", "freebase_id", "freebase_mid", "general",
    "genres", "guest_stars", "homepage", "images", "imdb_id", "languages", "name", "network",
    "origin_country", "original_name", "original_title", "overview", "parts", "place_of_birth",
    "plot_keywords", "production_code", "production_companies", "production_countries",
    "releases", "revenue", "runtime", "season", "season_number", "season_regular",
    "spoken_languages", "status", "tagline", "title", "translations", "tvdb_id", "tvrage_id",
    "type", "video", "videos",
]  # fmt: skip
MOVIE_GENRES = {
    28: "Action", 12: "Adventure", 16: "Animation", 35: "Comedy", 80: "Crime",
    99: "Documentary", 18: "Drama", 10751: "Family", 14: "Fantasy", 36: "History",
    27: "Horror", 10402: "Music", 9648: "Mystery", 10749: "Romance", 878: "Science Fiction",
    10770: "TV Movie", 53: "Thriller", 10752: "War", 37: "Western",
}  # fmt: skip
TV_GENRES = {
    10759: "Action & Adventure", 16: "Animation", 35: "Comedy", 80: "Crime",
    99: "Documentary", 18: "Drama", 10751: "Family", 10762: "Kids", 9648: "Mystery",
    10763: "News", 10764: "Reality", 10765: "Sci-Fi & Fantasy", 10766: "Soap", 10767: "Talk",
    10768: "War & Politics", 37: "Western",
}  # fmt: skip
ENGLISH = {"english_name": "English", "iso_639_1": "en", "name": "English"}
USA = {"iso_3166_1": "US", "name": "United States of America"}


def _company(id: int, logo: str, name: str) -> dict[str, Any]:
    return {"id": id, "logo_path": logo, "name": name, "origin_country": "US"}


WARNER = _company(174, "/zhD3hhtKB5qyv7ZeL4uLpNxgMVU.png", "Warner Bros. Pictures")
LEGENDARY = _company(923, "/8M99Dkt23MjQMTTWukq4m5XsEuo.png", "Legendary Pictures")
SONY_TV = _company(11073, "/aCbASRcI1MI7DXjPbSW9Fcv9uGR.png", "Sony Pictures Television Studios")
# Networks have ids of their own, apart from companies.
HBO = _company(49, "/tuomPhY2UtuPTqqFnKMVHvSb724.png", "HBO")
AMC = _company(174, "/alqLicR1ZMHMaZGP3xRQxn9sq7p.png", "AMC")


def tmdb_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    """An error in TMDB's form: ``{"success": false, "status_code": …, "status_message": …}``."""
    return web.json_response(
        {"status_code": code, "status_message": message, "success": False},
        status=status,
        headers=headers or None,
    )


def _unauthorized() -> web.Response:
    return tmdb_error(401, 7, "Invalid API key: You must be granted a valid key.")


def _not_found() -> web.Response:
    return tmdb_error(404, 34, "The resource you requested could not be found.")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _matches(query: str, *names: str) -> bool:
    """TMDB-like matching: every word of the query starts a word of the title."""
    wanted = _words(query)
    have = [w for name in names for w in _words(name)]
    return bool(wanted) and all(any(h.startswith(w) for h in have) for w in wanted)


@dataclass
class Movie:
    id: int
    title: str
    release_date: str
    imdb_id: str
    overview: str
    genre_ids: list[int]
    runtime: int
    poster_path: str
    backdrop_path: str
    popularity: float
    vote_average: float
    vote_count: int
    tagline: str = ""
    budget: int = 0
    revenue: int = 0
    companies: list[dict[str, Any]] = field(default_factory=list)
    collection: dict[str, Any] | None = None
    wikidata_id: str | None = None
    facebook_id: str | None = None
    adult: bool = False
    # For films not yet released, the release date is this many days from today.
    days_from_now: int | None = None

    @property
    def released(self) -> str:
        if self.days_from_now is not None:
            return (date.today() + timedelta(days=self.days_from_now)).isoformat()
        return self.release_date

    def as_result(self) -> dict[str, Any]:
        return {
            "adult": self.adult,
            "backdrop_path": self.backdrop_path,
            "genre_ids": self.genre_ids,
            "id": self.id,
            "original_language": "en",
            "original_title": self.title,
            "overview": self.overview,
            "popularity": self.popularity,
            "poster_path": self.poster_path,
            "release_date": self.released,
            "title": self.title,
            "video": False,
            "vote_average": self.vote_average,
            "vote_count": self.vote_count,
        }

    def as_details(self) -> dict[str, Any]:
        upcoming = self.days_from_now is not None and self.days_from_now > 0
        return {
            "adult": self.adult,
            "backdrop_path": self.backdrop_path,
            "belongs_to_collection": self.collection,
            "budget": self.budget,
            "genres": [{"id": g, "name": MOVIE_GENRES[g]} for g in self.genre_ids],
            "homepage": f"https://www.example.com/movies/{self.id}",
            "id": self.id,
            "imdb_id": self.imdb_id,
            "origin_country": ["US"],
            "original_language": "en",
            "original_title": self.title,
            "overview": self.overview,
            "popularity": self.popularity,
            "poster_path": self.poster_path,
            "production_companies": self.companies,
            "production_countries": [USA],
            "release_date": self.released,
            "revenue": self.revenue,
            "runtime": self.runtime,
            "spoken_languages": [ENGLISH],
            "status": "Post Production" if upcoming else "Released",
            "tagline": self.tagline,
            "title": self.title,
            "video": False,
            "vote_average": self.vote_average,
            "vote_count": self.vote_count,
        }

    def external_ids(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "imdb_id": self.imdb_id,
            "wikidata_id": self.wikidata_id,
            "facebook_id": self.facebook_id,
            "instagram_id": None,
            "twitter_id": None,
        }


@dataclass
class Season:
    season_number: int
    episode_count: int
    air_date: str
    id: int
    vote_average: float
    poster_path: str

    def as_json(self) -> dict[str, Any]:
        return {
            "air_date": self.air_date,
            "episode_count": self.episode_count,
            "id": self.id,
            "name": "Specials" if self.season_number == 0 else f"Season {self.season_number}",
            "overview": "",
            "poster_path": self.poster_path,
            "season_number": self.season_number,
            "vote_average": self.vote_average,
        }


@dataclass
class Show:
    id: int
    name: str
    first_air_date: str
    last_air_date: str
    overview: str
    genre_ids: list[int]
    poster_path: str
    backdrop_path: str
    popularity: float
    vote_average: float
    vote_count: int
    seasons: list[Season]
    network: dict[str, Any]
    created_by: list[dict[str, Any]]
    external: dict[str, Any]
    last_episode: dict[str, Any]
    status: str = "Ended"
    tagline: str = ""
    episode_run_time: list[int] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    adult: bool = False

    def as_result(self) -> dict[str, Any]:
        return {
            "adult": self.adult,
            "backdrop_path": self.backdrop_path,
            "genre_ids": self.genre_ids,
            "id": self.id,
            "origin_country": ["US"],
            "original_language": "en",
            "original_name": self.name,
            "overview": self.overview,
            "popularity": self.popularity,
            "poster_path": self.poster_path,
            "first_air_date": self.first_air_date,
            "name": self.name,
            "vote_average": self.vote_average,
            "vote_count": self.vote_count,
        }

    def as_details(self) -> dict[str, Any]:
        regular = [s for s in self.seasons if s.season_number > 0]
        return {
            "adult": self.adult,
            "backdrop_path": self.backdrop_path,
            "created_by": self.created_by,
            "episode_run_time": self.episode_run_time,
            "first_air_date": self.first_air_date,
            "genres": [{"id": g, "name": TV_GENRES[g]} for g in self.genre_ids],
            "homepage": f"https://www.example.com/shows/{self.id}",
            "id": self.id,
            "in_production": self.status != "Ended",
            "languages": ["en"],
            "last_air_date": self.last_air_date,
            "last_episode_to_air": {**self.last_episode, "show_id": self.id},
            "name": self.name,
            "next_episode_to_air": None,
            "networks": [self.network],
            "number_of_episodes": sum(s.episode_count for s in regular),
            "number_of_seasons": len(regular),
            "origin_country": ["US"],
            "original_language": "en",
            "original_name": self.name,
            "overview": self.overview,
            "popularity": self.popularity,
            "poster_path": self.poster_path,
            "production_companies": self.companies,
            "production_countries": [USA],
            "seasons": [s.as_json() for s in self.seasons],
            "spoken_languages": [ENGLISH],
            "status": self.status,
            "tagline": self.tagline,
            "type": "Scripted",
            "vote_average": self.vote_average,
            "vote_count": self.vote_count,
        }

    def external_ids(self) -> dict[str, Any]:
        return {"id": self.id, **self.external}


@dataclass
class Person:
    id: int
    name: str
    gender: int
    profile_path: str
    popularity: float
    known_for: list[int | str]  # movie ids, or "tv:<id>"
    known_for_department: str = "Acting"
    adult: bool = False


@dataclass
class FakeTMDB(FakeServer):
    """TMDB with a small real catalogue, keys that tests know, and a rate limit they trigger."""

    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    read_token: str = ""
    movies: dict[int, Movie] = field(default_factory=dict)
    shows: dict[int, Show] = field(default_factory=dict)
    people: dict[int, Person] = field(default_factory=dict)
    seed: bool = True
    # Headers of every request, newest last, so tests can check what a client sent.
    requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.read_token:
            self.read_token = _read_token(self.api_key)
        self._limited = 0
        self._retry_after = 1
        if self.seed:
            _seed(self)

    # --- test controls -------------------------------------------------------------------

    def rate_limit(self, requests: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``requests`` requests with TMDB's 429 and ``Retry-After``."""
        self._limited = requests
        self._retry_after = retry_after

    # --- the API -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._tmdb_middleware)
        return app

    def routes(self, app: web.Application) -> None:
        get = app.router.add_get
        get("/3/configuration", self.configuration, allow_head=False)
        get("/3/search/multi", self.search_multi, allow_head=False)
        get("/3/search/movie", self.search_movie, allow_head=False)
        get("/3/search/tv", self.search_tv, allow_head=False)
        get("/3/movie/popular", self.movie_popular, allow_head=False)
        get("/3/movie/upcoming", self.movie_upcoming, allow_head=False)
        get(r"/3/movie/{movie_id:\d+}", self.movie, allow_head=False)
        get(r"/3/movie/{movie_id:\d+}/external_ids", self.movie_external_ids, allow_head=False)
        get("/3/tv/popular", self.tv_popular, allow_head=False)
        get(r"/3/tv/{series_id:\d+}", self.tv, allow_head=False)
        get(r"/3/tv/{series_id:\d+}/external_ids", self.tv_external_ids, allow_head=False)
        for media_type in ("all", "movie", "tv", "person"):
            get(
                f"/3/trending/{media_type}/{{time_window:day|week}}",
                self.trending,
                allow_head=False,
            )

    @web.middleware
    async def _tmdb_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self._limited > 0:
            self._limited -= 1
            return tmdb_error(
                429,
                25,
                "Your request count (#) is over the allowed limit of (40).",
                **{"Retry-After": str(self._retry_after)},
            )
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if bearer != self.read_token and request.query.get("api_key") != self.api_key:
            return _unauthorized()
        page = request.query.get("page", "1")
        if not page.isdigit() or not 1 <= int(page) <= 500:
            return tmdb_error(
                400,
                22,
                "Invalid page: Pages start at 1 and max at 500. "
                "They are expected to be an integer.",
            )
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _not_found()

    async def configuration(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "change_keys": CHANGE_KEYS,
                "images": {
                    "base_url": "http://image.tmdb.org/t/p/",
                    "secure_base_url": "https://image.tmdb.org/t/p/",
                    **IMAGE_SIZES,
                },
            }
        )

    def _adult_ok(self, request: web.Request) -> bool:
        return request.query.get("include_adult", "false").lower() == "true"

    async def search_multi(self, request: web.Request) -> web.Response:
        query, adult = request.query.get("query", ""), self._adult_ok(request)
        found: list[tuple[float, dict[str, Any]]] = []
        for movie in self.movies.values():
            if _matches(query, movie.title) and (adult or not movie.adult):
                found.append((movie.popularity, {**movie.as_result(), "media_type": "movie"}))
        for show in self.shows.values():
            if _matches(query, show.name) and (adult or not show.adult):
                found.append((show.popularity, {**show.as_result(), "media_type": "tv"}))
        for person in self.people.values():
            if _matches(query, person.name) and (adult or not person.adult):
                found.append((person.popularity, self._person_result(person)))
        found.sort(key=lambda pair: pair[0], reverse=True)
        return _page(request, [result for _, result in found])

    async def search_movie(self, request: web.Request) -> web.Response:
        query, adult = request.query.get("query", ""), self._adult_ok(request)
        year = request.query.get("primary_release_year") or request.query.get("year")
        movies = [
            m
            for m in self.movies.values()
            if _matches(query, m.title)
            and (adult or not m.adult)
            and (not year or m.released.startswith(year))
        ]
        movies.sort(key=lambda m: m.popularity, reverse=True)
        return _page(request, [m.as_result() for m in movies])

    async def search_tv(self, request: web.Request) -> web.Response:
        query, adult = request.query.get("query", ""), self._adult_ok(request)
        year = request.query.get("first_air_date_year") or request.query.get("year")
        shows = [
            s
            for s in self.shows.values()
            if _matches(query, s.name)
            and (adult or not s.adult)
            and (not year or s.first_air_date.startswith(year))
        ]
        shows.sort(key=lambda s: s.popularity, reverse=True)
        return _page(request, [s.as_result() for s in shows])

    def _appended(self, request: web.Request, external: dict[str, Any]) -> dict[str, Any]:
        wanted = {p.strip() for p in request.query.get("append_to_response", "").split(",")}
        return {"external_ids": external} if "external_ids" in wanted else {}

    async def movie(self, request: web.Request) -> web.Response:
        movie = self.movies.get(int(request.match_info["movie_id"]))
        if movie is None:
            return _not_found()
        external = {k: v for k, v in movie.external_ids().items() if k != "id"}
        return web.json_response({**movie.as_details(), **self._appended(request, external)})

    async def movie_external_ids(self, request: web.Request) -> web.Response:
        movie = self.movies.get(int(request.match_info["movie_id"]))
        return _not_found() if movie is None else web.json_response(movie.external_ids())

    async def tv(self, request: web.Request) -> web.Response:
        show = self.shows.get(int(request.match_info["series_id"]))
        if show is None:
            return _not_found()
        external = dict(show.external)
        return web.json_response({**show.as_details(), **self._appended(request, external)})

    async def tv_external_ids(self, request: web.Request) -> web.Response:
        show = self.shows.get(int(request.match_info["series_id"]))
        return _not_found() if show is None else web.json_response(show.external_ids())

    def _released(self) -> list[Movie]:
        return [m for m in self.movies.values() if m.released <= date.today().isoformat()]

    async def movie_popular(self, request: web.Request) -> web.Response:
        movies = sorted(self._released(), key=lambda m: m.popularity, reverse=True)
        return _page(request, [m.as_result() for m in movies if not m.adult])

    async def tv_popular(self, request: web.Request) -> web.Response:
        shows = sorted(self.shows.values(), key=lambda s: s.popularity, reverse=True)
        return _page(request, [s.as_result() for s in shows if not s.adult])

    async def movie_upcoming(self, request: web.Request) -> web.Response:
        today = date.today()
        low, high = today - timedelta(days=3), today + timedelta(days=60)
        movies = sorted(
            (m for m in self.movies.values() if low.isoformat() <= m.released <= high.isoformat()),
            key=lambda m: m.popularity,
            reverse=True,
        )
        return _page(
            request,
            [m.as_result() for m in movies if not m.adult],
            dates={"maximum": high.isoformat(), "minimum": low.isoformat()},
        )

    async def trending(self, request: web.Request) -> web.Response:
        media_type = request.path.split("/")[3]
        weekly = request.match_info["time_window"] == "week"
        found: list[tuple[float, dict[str, Any]]] = []
        if media_type in ("all", "movie"):
            for movie in self._released():
                score = movie.vote_count if weekly else movie.popularity
                found.append((score, {**movie.as_result(), "media_type": "movie"}))
        if media_type in ("all", "tv"):
            for show in self.shows.values():
                score = show.vote_count if weekly else show.popularity
                found.append((score, {**show.as_result(), "media_type": "tv"}))
        if media_type == "person":
            for person in self.people.values():
                found.append((person.popularity, self._person_result(person)))
        found.sort(key=lambda pair: pair[0], reverse=True)
        return _page(request, [result for _, result in found if not result.get("adult")])

    def _person_result(self, person: Person) -> dict[str, Any]:
        known_for = []
        for ref in person.known_for:
            if isinstance(ref, str) and ref.startswith("tv:"):
                show = self.shows.get(int(ref[3:]))
                if show:
                    known_for.append({**show.as_result(), "media_type": "tv"})
            elif (movie := self.movies.get(int(ref))) is not None:
                known_for.append({**movie.as_result(), "media_type": "movie"})
        return {
            "adult": person.adult,
            "gender": person.gender,
            "id": person.id,
            "known_for_department": person.known_for_department,
            "name": person.name,
            "original_name": person.name,
            "media_type": "person",
            "popularity": person.popularity,
            "profile_path": person.profile_path,
            "known_for": known_for,
        }


def _page(request: web.Request, results: list[dict[str, Any]], **extra: Any) -> web.Response:
    page = int(request.query.get("page", "1"))
    start = (page - 1) * PAGE_SIZE
    return web.json_response(
        {
            **extra,
            "page": page,
            "results": results[start : start + PAGE_SIZE],
            "total_pages": max(1, math.ceil(len(results) / PAGE_SIZE)),
            "total_results": len(results),
        }
    )


def _image_path(seed: str) -> str:
    """An image path in TMDB's form (``/`` + 27 letters and digits + ``.jpg``)."""
    digest = hashlib.sha256(seed.encode()).digest()
    letters = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:27])
    return f"/{letters}.jpg"


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _read_token(api_key: str) -> str:
    """A v4 read access token shaped like TMDB's (a signed JWT naming the v3 key)."""
    header = _b64(json.dumps({"alg": "HS256"}).encode())
    claims = {
        "aud": api_key,
        "nbf": 1700000000.0,
        "sub": secrets.token_hex(12),
        "scopes": ["api_read"],
        "version": 1,
    }
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"


def _seed(tmdb: FakeTMDB) -> None:
    movies = [
        Movie(
            603, "The Matrix", "1999-03-31", "tt0133093",
            "Set in the 22nd century, The Matrix tells the story of a computer hacker who joins "
            "a group of underground insurgents fighting the vast and powerful computers who now "
            "rule the earth.",
            [28, 878], 136, "/f89U3ADr1oiB1s9GkdPOEpXUk5H.jpg",
            "/fNG7i7RqMErkcqhohV2a6cV1Ehy.jpg", 82.5, 8.2, 26411,
            tagline="Welcome to the Real World.", budget=63000000, revenue=463517383,
            companies=[WARNER],
            collection={
                "id": 2344, "name": "The Matrix Collection",
                "poster_path": "/bV9qTVHTVf0gkW0j7p7M0ILD4pG.jpg",
                "backdrop_path": "/bRm2DEgUiYciDw3myHuYFInD7la.jpg",
            },
            wikidata_id="Q83495", facebook_id="TheMatrixMovie",
        ),
        Movie(
            604, "The Matrix Reloaded", "2003-05-15", "tt0234215",
            "Six months after the events depicted in The Matrix, Neo has proved to be a good "
            "omen for the free humans, as more and more humans are being freed from the matrix.",
            [12, 28, 53, 878], 138, "/9TGHDvWrqKBzwDxDodHYXEmOE6J.jpg",
            "/pxK1iK6anS6erGg4QePmMKbB1E7.jpg", 41.3, 7.0, 11020,
            tagline="Free your mind.", budget=150000000, revenue=741847937,
            companies=[WARNER], wikidata_id="Q189600",
        ),
        Movie(
            27205, "Inception", "2010-07-15", "tt1375666",
            "Cobb, a skilled thief who commits corporate espionage by infiltrating the "
            "subconscious of his targets, is offered a chance to regain his old life.",
            [28, 878, 12], 148, "/oYuLEt3zVCKq57qu2F8dT7NIa6f.jpg",
            "/8ZTVqvKDQ8emSGUEMjsS4yHAwrp.jpg", 96.1, 8.4, 37420,
            tagline="Your mind is the scene of the crime.", budget=160000000,
            revenue=839030630, companies=[LEGENDARY, WARNER], wikidata_id="Q25188",
            facebook_id="inception",
        ),
        Movie(
            157336, "Interstellar", "2014-11-05", "tt0816692",
            "The adventures of a group of explorers who make use of a newly discovered wormhole "
            "to surpass the limitations on human space travel and conquer the vast distances "
            "involved in an interstellar voyage.",
            [12, 18, 878], 169, "/gEU2QniE6E77NI6lCU6MxlNBvIx.jpg",
            "/xJHokMbljvjADYdit5fK5VQsXEG.jpg", 140.2, 8.4, 36200,
            tagline="Mankind was born on Earth. It was never meant to die here.",
            budget=165000000, revenue=746606706, companies=[LEGENDARY],
            wikidata_id="Q13417189", facebook_id="InterstellarMovie",
        ),
        Movie(
            693134, "Dune: Part Two", "2024-02-27", "tt15239678",
            "Follow the mythic journey of Paul Atreides as he unites with Chani and the Fremen "
            "while on a path of revenge against the conspirators who destroyed his family.",
            [878, 12], 167, "/6izwz7rsy95ARzTR3poZ8H6c5pp.jpg",
            "/xOMo8BRK7PfcJv9JCnx7s5hj0PX.jpg", 180.7, 8.1, 6870,
            tagline="Long live the fighters.", budget=190000000, revenue=714444358,
            companies=[LEGENDARY, WARNER], wikidata_id="Q107425587",
        ),
        Movie(
            50619, "The Twilight Saga: Breaking Dawn - Part 1", "2011-11-16", "tt1324999",
            "The new found married bliss of Bella Swan and vampire Edward Cullen is cut short "
            "when a series of betrayals and misfortunes threatens to destroy their world.",
            [12, 14, 10749], 117, "/qs8LsHKYlVRmJbFUiSUhhRAygwj.jpg",
            "/bbFG5cnUwY8JQ6iuqgtBWBsoVU8.jpg", 37.8, 6.2, 8620,
            tagline="Forever is only the beginning.", budget=110000000, revenue=712205856,
            wikidata_id="Q159638",
        ),
        Movie(
            1290001, "Starfall Protocol", "", "tt32810001",
            "When a derelict satellite wakes above the Atlantic, a grounded astronaut has one "
            "night to keep it from falling on the city she swore she would never return to.",
            [878, 53], 121, "/8bN1cP0VJrQeMZr2Z5y0hI3qkLw.jpg",
            "/4Vb3wZkq1bYZo7XlGQy8fE0X1Lp.jpg", 64.0, 0.0, 0,
            tagline="Look up.", days_from_now=12,
        ),
        Movie(
            1290002, "The Quiet Orchard", "", "tt32810002",
            "Three estranged sisters return to their late father's apple farm for one last "
            "harvest, and find the letters he never sent.",
            [18], 104, "/x5Kr9lM2rGcQ2bq3yR9WcUu6d1T.jpg",
            "/n1c2d3Sx8aJm4kQy7XlGQy8fE0X2.jpg", 21.4, 0.0, 0,
            days_from_now=40,
        ),
    ]  # fmt: skip
    tmdb.movies.update({m.id: m for m in movies})
    gilligan = {
        "id": 66633, "credit_id": "52542286760ee31328001a7b", "name": "Vince Gilligan",
        "original_name": "Vince Gilligan", "gender": 2,
        "profile_path": "/z3E0DhBg1V1PZVEtS9vfFPzOWYB.jpg",
    }  # fmt: skip
    shows = [
        Show(
            1396, "Breaking Bad", "2008-01-20", "2013-09-29",
            "Walter White, a New Mexico chemistry teacher, is diagnosed with Stage III cancer "
            "and given a prognosis of only two years left to live. He becomes filled with a "
            "sense of fearlessness and an unrelenting desire to secure his family's financial "
            "future at any cost as he enters the dangerous world of drugs and crime.",
            [18, 80], "/ztkUQFLlC19CCMYHW9o1zWhJRNq.jpg", "/tsRy63Mu5cu8etL1X7ZLyf7UP1M.jpg",
            270.6, 8.9, 14311,
            seasons=[
                Season(0, 9, "2009-02-17", 3577, 0.0, "/40dT79mDEZwXkQiZNBgSaydQFDP.jpg"),
                Season(1, 7, "2008-01-20", 3572, 8.3, "/1BP4xYv9ZG4ZVHkL7ocOziBbSYH.jpg"),
                Season(2, 13, "2009-03-08", 3573, 8.6, "/e3oGYpoTUhOFK0BJfloru5ZmGV.jpg"),
                Season(3, 13, "2010-03-21", 3575, 8.4, "/ffP8Q8ew048YofHRnFVM18B2fPG.jpg"),
                Season(4, 13, "2011-07-17", 3576, 8.6, "/5ewrnKp4TboU4hTLT5cWO350mHj.jpg"),
                Season(5, 16, "2012-07-15", 3578, 8.9, "/r3z70vunihrAkjILQKWHX0G2xzO.jpg"),
            ],
            network=AMC, created_by=[gilligan],
            external={
                "imdb_id": "tt0903747", "freebase_mid": "/m/03d34x8",
                "freebase_id": "/en/breaking_bad", "tvdb_id": 81189, "tvrage_id": 18164,
                "wikidata_id": "Q1079", "facebook_id": "BreakingBad",
                "instagram_id": "breakingbad", "twitter_id": "BreakingBad",
            },
            last_episode={
                "id": 62161, "name": "Felina",
                "overview": "All bad things must come to an end.", "vote_average": 9.2,
                "vote_count": 221, "air_date": "2013-09-29", "episode_number": 16,
                "episode_type": "finale", "production_code": "", "runtime": 56,
                "season_number": 5, "still_path": "/pA0YwyhvdDXP3BEGL2grrIhq8aM.jpg",
            },
            tagline="Change the equation.", episode_run_time=[45, 47], companies=[SONY_TV],
        ),
        Show(
            1399, "Game of Thrones", "2011-04-17", "2019-05-19",
            "Seven noble families fight for control of the mythical land of Westeros. Friction "
            "between the houses leads to full-scale war.",
            [10765, 18, 10759], "/1XS1oqL89opfnbLl8WnZY1O1uJx.jpg",
            "/2OMB0ynKlyIenMJWI2Dy9IWT4c.jpg", 343.1, 8.5, 24500,
            seasons=[
                Season(n, count, aired, 3623 + n, vote, _image_path(f"got-{n}"))
                for n, count, aired, vote in (
                    (1, 10, "2011-04-17", 8.4), (2, 10, "2012-04-01", 8.3),
                    (3, 10, "2013-03-31", 8.4), (4, 10, "2014-04-06", 8.5),
                    (5, 10, "2015-04-12", 8.1), (6, 10, "2016-04-24", 8.4),
                    (7, 7, "2017-07-16", 8.2), (8, 6, "2019-04-14", 7.0),
                )
            ],
            network=HBO,
            created_by=[
                {"id": 9813, "credit_id": "5256c8c219c2956ff604858a", "name": "David Benioff",
                 "original_name": "David Benioff", "gender": 2,
                 "profile_path": "/xvNN5huL0X8yJ7h3IZfGG4O2zBD.jpg"},
            ],
            external={
                "imdb_id": "tt0944947", "freebase_mid": "/m/0524b41",
                "freebase_id": "/en/game_of_thrones", "tvdb_id": 121361, "tvrage_id": 24493,
                "wikidata_id": "Q23572", "facebook_id": "GameOfThrones",
                "instagram_id": "gameofthrones", "twitter_id": "GameOfThrones",
            },
            last_episode={
                "id": 1551830, "name": "The Iron Throne",
                "overview": "In the aftermath of the devastating attack on King's Landing, "
                "Daenerys must face the survivors.", "vote_average": 4.8, "vote_count": 310,
                "air_date": "2019-05-19", "episode_number": 6, "episode_type": "finale",
                "production_code": "806", "runtime": 80, "season_number": 8,
                "still_path": "/zBi2O5EJfgTS6Ae0HdAYLm9o2nf.jpg",
            },
            tagline="Winter is coming.", episode_run_time=[60],
        ),
        Show(
            100088, "The Last of Us", "2023-01-15", "2025-05-25",
            "Twenty years after modern civilization has been destroyed, Joel, a hardened "
            "survivor, is hired to smuggle Ellie, a 14-year-old girl, out of an oppressive "
            "quarantine zone.",
            [18], "/dmo6TYuuJgaYinXBPjrgG9mB5od.jpg", "/lY2DhbA7Hy44fAKddr06UrXWWaQ.jpg",
            512.3, 8.6, 5830,
            seasons=[
                Season(1, 9, "2023-01-15", 144593, 8.3, "/aUQKIpZZ31KWbpdHMCmaV76u78T.jpg"),
                Season(2, 7, "2025-04-13", 405545, 7.6, "/5kS6NmKj7N3ynxX8G9rp8qIJ0ed.jpg"),
            ],
            network=HBO,
            created_by=[
                {"id": 1233032, "credit_id": "5f2b7dc2a1d7c8003568a2a5", "name": "Craig Mazin",
                 "original_name": "Craig Mazin", "gender": 2,
                 "profile_path": "/6a2IT8E3MHhfhGjyfqBPE0XZu6y.jpg"},
            ],
            external={
                "imdb_id": "tt3581920", "freebase_mid": None, "freebase_id": None,
                "tvdb_id": 392256, "tvrage_id": None, "wikidata_id": "Q113335946",
                "facebook_id": "TheLastofUsHBO", "instagram_id": "thelastofushbo",
                "twitter_id": "TheLastofUsHBO",
            },
            last_episode={
                "id": 5877313, "name": "Convergence", "overview": "Ellie's journey reaches a "
                "turning point.", "vote_average": 7.1, "vote_count": 95,
                "air_date": "2025-05-25", "episode_number": 7, "episode_type": "finale",
                "production_code": "", "runtime": 58, "season_number": 2,
                "still_path": "/dSkHAWKaTbahdnA5cQv0m7WbYbs.jpg",
            },
            status="Returning Series", episode_run_time=[],
        ),
    ]  # fmt: skip
    tmdb.shows.update({s.id: s for s in shows})
    people = [
        Person(6384, "Keanu Reeves", 2, "/4D0PpNI0kmP58hgrwGC3wCjxhnm.jpg", 61.4, [603, 604]),
        Person(17419, "Bryan Cranston", 2, "/7Jahy5LZX2Fo8fGJltMreAI49hC.jpg", 38.2,
               ["tv:1396"]),
    ]  # fmt: skip
    tmdb.people.update({p.id: p for p in people})
