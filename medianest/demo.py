"""``medianest demo``: a populated portal on fake services, with one command and no account.

Everything runs in one process: the fake upstream servers of :mod:`medianest.testing` on loopback
ports (plex.tv, a Plex Media Server, Sonarr, Radarr, Tautulli, TMDB and YouTube, seeded with
made-up data) and a MediaNest whose built-in integrations point at them, with a local
administrator and a local user whose passwords are made up at each start. The demo reads no
configuration (neither ``MEDIANEST_*`` variables nor a settings file): its database, key and
downloads live in a folder of its own, by default a temporary one removed when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import shutil
import signal
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine

from . import __version__
from .app import create_app
from .core import audit, db
from .core.auth import create_local_user, hash_password
from .core.keys import ENGINE, REGISTRY
from .core.models import PluginState, User
from .core.plugins import PluginSettingsInvalid
from .core.settings import Settings
from .testing import (
    FakePlexMediaServer,
    FakePlexTV,
    FakeRadarr,
    FakeServer,
    FakeSonarr,
    FakeTautulli,
    FakeTMDB,
    FakeYouTube,
    PlexAccount,
)
from .testing.arr import CatalogueMovie, CatalogueSeries
from .testing.tmdb import MOVIE_GENRES, TV_GENRES, Movie, Season, Show

LOOPBACK = "127.0.0.1"
ADMIN = "admin"
USER = "friend"
# Plex accounts on the fake plex.tv; Tautulli's seeded history knows people by these names.
PLEX_OWNER = "mediaowner"
PLEX_FRIEND = "alice"
# Marks a folder as the demo's own, so that --data-dir never takes over a real installation.
MARKER = ".medianest-demo"


class DemoError(Exception):
    """The demo cannot start; the message says why, for the person who ran it."""


@dataclass
class Fakes:
    """The fake services of one demo, started on loopback ports."""

    plex_tv: FakePlexTV
    pms: FakePlexMediaServer
    sonarr: FakeSonarr
    radarr: FakeRadarr
    tautulli: FakeTautulli
    tmdb: FakeTMDB
    youtube: FakeYouTube
    owner: PlexAccount
    friend: PlexAccount

    @property
    def servers(self) -> list[FakeServer]:
        return [
            self.plex_tv,
            self.pms,
            self.sonarr,
            self.radarr,
            self.tautulli,
            self.tmdb,
            self.youtube,
        ]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()


async def start_fakes() -> Fakes:
    """Start every fake service on a free loopback port, seeded for the demo."""
    plex_tv = FakePlexTV(host=LOOPBACK)
    owner = plex_tv.add_account(PLEX_OWNER, "owner@example.com")
    friend = plex_tv.add_account(PLEX_FRIEND)
    pms = FakePlexMediaServer(host=LOOPBACK, tokens={owner.token})
    fakes = Fakes(
        plex_tv=plex_tv,
        pms=pms,
        sonarr=FakeSonarr(host=LOOPBACK),
        radarr=FakeRadarr(host=LOOPBACK),
        tautulli=FakeTautulli(
            host=LOOPBACK,
            pms_name=pms.name,
            pms_identifier=pms.machine_id,
            pms_version=pms.version,
        ),
        tmdb=FakeTMDB(host=LOOPBACK),
        youtube=FakeYouTube(host=LOOPBACK),
        owner=owner,
        friend=friend,
    )
    try:
        for server in fakes.servers:
            await server.start()
    except BaseException:
        await fakes.stop()
        raise
    # plex.tv knows the server by the machine id the server itself reports, at its address.
    plex_server = plex_tv.add_server(pms.name, owner, [friend], machine_id=pms.machine_id)
    plex_server.uri = pms.url
    _catalogues_agree(fakes)
    _stock_libraries(fakes)
    return fakes


def _catalogues_agree(fakes: Fakes) -> None:
    """Every film or series in Plex, Radarr or Sonarr is on TMDB, and every one on TMDB can be
    added to Radarr or Sonarr, as with the real services (each fake is seeded for its own
    tests): whatever the demo's search finds can be requested and fulfilled."""
    _films_agree(fakes)
    _series_agree(fakes)


def _films_agree(fakes: Fakes) -> None:
    tmdb, radarr = fakes.tmdb, fakes.radarr
    for film in radarr.catalogue:
        if film.tmdb_id not in tmdb.movies:
            tmdb.movies[film.tmdb_id] = Movie(
                film.tmdb_id, film.title, film.in_cinemas.isoformat(), film.imdb_id,
                film.overview, [g for g, name in MOVIE_GENRES.items() if name in film.genres],
                film.runtime, "", "", 10.0, film.tmdb_rating[1], film.tmdb_rating[0],
            )  # fmt: skip
    for item in fakes.pms.items.values():
        tmdb_id = item.external_id("tmdb") if item.type == "movie" else None
        if tmdb_id and int(tmdb_id) not in tmdb.movies:
            tmdb.movies[int(tmdb_id)] = Movie(
                int(tmdb_id), item.title, item.originally_available_at or f"{item.year}-01-01",
                item.external_id("imdb") or "", item.summary,
                [g for g, name in MOVIE_GENRES.items() if name in item.genres],
                (item.duration or 0) // 60_000, "", "", 10.0, item.rating or 0.0, 100,
            )  # fmt: skip
    known = {film.tmdb_id for film in radarr.catalogue}
    for movie in list(tmdb.movies.values()):
        if movie.id not in known:
            radarr.catalogue.append(
                CatalogueMovie(
                    tmdb_id=movie.id,
                    imdb_id=movie.imdb_id,
                    title=movie.title,
                    year=int(movie.released[:4]),
                    runtime=movie.runtime,
                    certification="",
                    studio=movie.companies[0]["name"] if movie.companies else "",
                    genres=tuple(MOVIE_GENRES[g] for g in movie.genre_ids if g in MOVIE_GENRES),
                    overview=movie.overview,
                    in_cinemas=date.fromisoformat(movie.released),
                    tmdb_rating=(movie.vote_count, movie.vote_average),
                )
            )


def _series_agree(fakes: Fakes) -> None:
    tmdb, sonarr = fakes.tmdb, fakes.sonarr
    for series in sonarr.catalogue:
        if series.tmdb_id not in tmdb.shows:
            seasons = [
                Season(number, count, premiere.isoformat(), series.tmdb_id * 100 + number, 0.0, "")
                for number, (premiere, count) in enumerate(series.seasons, start=1)
            ]
            tmdb.shows[series.tmdb_id] = _show(
                series.tmdb_id, series.title, series.overview, series.network, seasons,
                {"imdb_id": series.imdb_id, "tvdb_id": series.tvdb_id},
                [g for g, name in TV_GENRES.items() if name in series.genres], series.ended,
            )  # fmt: skip
    for item in fakes.pms.items.values():
        tmdb_id = item.external_id("tmdb") if item.type == "show" else None
        if tmdb_id and int(tmdb_id) not in tmdb.shows:
            premiere = item.originally_available_at or f"{item.year}-01-01"
            seasons = [
                Season(season.index or 0, len(season.children), premiere, 0, 0.0, "")
                for season in item.children
                if season.type == "season"
            ]
            tvdb_id = item.external_id("tvdb")
            tmdb.shows[int(tmdb_id)] = _show(
                int(tmdb_id), item.title, item.summary, item.studio or "", seasons,
                {"imdb_id": item.external_id("imdb"), "tvdb_id": int(tvdb_id) if tvdb_id else None},
                [g for g, name in TV_GENRES.items() if name in item.genres], True,
            )  # fmt: skip
    known = {series.tmdb_id for series in sonarr.catalogue}
    for show in list(tmdb.shows.values()):
        tvdb_id = show.external.get("tvdb_id")
        if show.id in known or not tvdb_id:
            continue
        numbered = sorted((s for s in show.seasons if s.season_number > 0), key=_number)
        sonarr.catalogue.append(
            CatalogueSeries(
                tvdb_id=int(tvdb_id),
                imdb_id=show.external.get("imdb_id") or "",
                tmdb_id=show.id,
                title=show.name,
                year=int(show.first_air_date[:4]),
                network=str(show.network.get("name", "")),
                air_time="21:00",
                runtime=show.episode_run_time[0] if show.episode_run_time else 45,
                certification="",
                genres=tuple(TV_GENRES[g] for g in show.genre_ids if g in TV_GENRES),
                overview=show.overview,
                ended=show.status == "Ended",
                seasons=tuple((date.fromisoformat(s.air_date), s.episode_count) for s in numbered),
            )
        )


def _number(season: Season) -> int:
    return season.season_number


def _show(
    tmdb_id: int,
    name: str,
    overview: str,
    network: str,
    seasons: list[Season],
    external: dict[str, Any],
    genre_ids: list[int],
    ended: bool,
) -> Show:
    """A series as TMDB tells of it, from what another service knows of it."""
    first = min((s.air_date for s in seasons if s.season_number > 0), default="2000-01-01")
    last = max((s.air_date for s in seasons), default=first)
    return Show(
        tmdb_id, name, first, last, overview, genre_ids, "", "", 10.0, 0.0, 0, seasons,
        network={"id": 0, "logo_path": None, "name": network, "origin_country": "US"},
        created_by=[], external=external, last_episode={},
        status="Ended" if ended else "Returning Series",
    )  # fmt: skip


def _stock_libraries(fakes: Fakes) -> None:
    """Films and series already in Radarr and Sonarr, and a few downloads under way."""
    radarr, sonarr = fakes.radarr, fakes.sonarr
    for tmdb_id in (603, 27205, 157336, 129):  # The Matrix, Inception, Interstellar, Spirited Away
        radarr.add_to_library(tmdb_id, downloaded=True)
    dune = radarr.add_to_library(693134)  # Dune: Part Two
    radarr.add_queue_item(dune, downloaded=0.42)
    sonarr.add_to_library(81189, downloaded_seasons=range(1, 6))  # Breaking Bad
    sonarr.add_to_library(360893, downloaded_seasons=[1])  # Chernobyl
    severance = sonarr.add_to_library(371980, downloaded_seasons=[1])
    sonarr.add_queue_item(sonarr.episode_id(severance, 2, 1), downloaded=0.65)
    sonarr.add_queue_item(sonarr.episode_id(severance, 2, 2), downloaded=0.1)


def plugin_settings(fakes: Fakes, library: Path) -> dict[str, dict[str, Any]]:
    """The settings of each built-in integration, pointing at its fake."""
    return {
        "plex": {
            "url": fakes.pms.url,
            "token": fakes.owner.token,
            "plex_tv_url": fakes.plex_tv.url,
            "plex_app_url": f"{fakes.plex_tv.url}/auth",
        },
        "arr": {
            "sonarr": [
                {
                    "name": "Sonarr",
                    "url": fakes.sonarr.url,
                    "api_key": fakes.sonarr.api_key,
                    # What requests are added with, so that the demo's requests go through.
                    "quality_profile_id": 4,
                    "root_folder": fakes.sonarr.root_folders[0],
                }
            ],
            "radarr": [
                {
                    "name": "Radarr",
                    "url": fakes.radarr.url,
                    "api_key": fakes.radarr.api_key,
                    "quality_profile_id": 4,
                    "root_folder": fakes.radarr.root_folders[0],
                }
            ],
        },
        "tautulli": {"url": fakes.tautulli.url, "api_key": fakes.tautulli.apikey},
        "tmdb": {"api_key": fakes.tmdb.api_key, "api_url": fakes.tmdb.url},
        "youtube": {
            "library_path": str(library),
            "api_key": fakes.youtube.key,
            "api_url": fakes.youtube.url,
        },
    }


def demo_settings(data_dir: Path, host: str, port: int) -> Settings:
    """Settings of the demo alone: every value is given, so no variable or file changes them."""
    values: dict[str, Any] = {
        name: field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
    }
    values |= {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{(data_dir / 'medianest.db').resolve().as_posix()}",
        "redis_url": None,
        "secret_key": None,
        "host": host,
        "port": port,
        "log_level": "warning",
    }
    return Settings(**values)


def prepare_data_dir(path: Path) -> None:
    """Make ``path`` the demo's folder; refuse one that holds anything else."""
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    if not marker.exists():
        if any(path.iterdir()):
            raise DemoError(
                f"{path} is not empty and was not made by `medianest demo`; "
                "give the demo a new or empty folder"
            )
        marker.write_text("made by `medianest demo`; everything here is fake data\n")


async def ensure_local_account(
    engine: AsyncEngine, username: str, password: str, role: str
) -> None:
    """Create the local account, or give it ``password`` if a kept demo folder has it."""
    try:
        await create_local_user(engine, username, password, role=role)
    except ValueError:
        async with engine.begin() as conn:
            await conn.execute(
                update(User)
                .where(
                    func.lower(User.username) == username.lower(), User.password_hash.is_not(None)
                )
                .values(password_hash=await hash_password(password), role=role, disabled=False)
            )
        return
    await audit.record(engine, "user.create", actor="demo", target=username, details={"role": role})


async def _integrations_off(settings: Settings) -> None:
    """Turn off the integrations a kept demo folder has, before MediaNest starts: they point at
    the fakes of the last run, which are gone (they are turned on again with the new ones)."""
    engine = db.create_engine(settings)
    try:
        await db.check_schema(engine)
        async with engine.begin() as conn:
            await conn.execute(update(PluginState).values(enabled=False))
    finally:
        await engine.dispose()


def _password(length: int = 16) -> str:
    # Letters and digits only: a double click selects the whole of it for copying.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class Demo:
    """A running demo: the fakes, MediaNest serving, and the two local accounts."""

    url: str
    data_dir: Path
    fakes: Fakes
    runner: web.AppRunner
    admin_password: str
    user_password: str

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.fakes.stop()

    def banner(self, *, temporary: bool) -> str:
        fakes = self.fakes
        where = (
            f"{self.data_dir} (removed when the demo stops)"
            if temporary
            else f"{self.data_dir} (kept)"
        )
        return "\n".join(
            [
                f"MediaNest {__version__} demo on {self.url}",
                "",
                f"  {ADMIN:<8} password: {self.admin_password}   (administrator)",
                f"  {USER:<8} password: {self.user_password}   (user)",
                "",
                f'  Sign in with Plex: approve as "{fakes.owner.username}" (owner of the Plex '
                f'server "{fakes.pms.name}")',
                f'  or "{fakes.friend.username}" (it is shared with her) on the fake plex.tv page.',
                "",
                "Everything here is fake data: Plex, plex.tv, Sonarr, Radarr, Tautulli, TMDB and",
                f"YouTube are stand-ins running in this process on {LOOPBACK}; no account anywhere",
                "is used. These passwords are shown once and are new at each start.",
                f"Data: {where}. Press Ctrl-C to stop.",
            ]
        )


async def start_demo(data_dir: Path, host: str = LOOPBACK, port: int = 8080) -> Demo:
    """Start the fakes and a MediaNest wired to them, listening on ``host``:``port``."""
    library = data_dir / "youtube"
    library.mkdir(parents=True, exist_ok=True)
    fakes = await start_fakes()
    runner: web.AppRunner | None = None
    try:
        settings = demo_settings(data_dir, host, port)
        await _integrations_off(settings)
        app = await create_app(settings)
        runner = web.AppRunner(app, shutdown_timeout=5)
        # Opens the database (creating it), the cache and the integrations; not the port yet.
        await runner.setup()
        engine = app[ENGINE]
        admin_password, user_password = _password(), _password()
        await ensure_local_account(engine, ADMIN, admin_password, "admin")
        await ensure_local_account(engine, USER, user_password, "user")
        registry = app[REGISTRY]
        for name, values in plugin_settings(fakes, library).items():
            if name not in registry.records:
                raise DemoError(f"the built-in integration {name!r} is not installed")
            try:
                await registry.save_settings(name, values, actor="demo")
            except PluginSettingsInvalid as exc:
                problems = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
                raise DemoError(f"{exc} ({problems})") from None
            await registry.set_enabled(name, True, actor="demo")
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else str(exc)
            raise DemoError(
                f"cannot listen on {host}:{port}: {reason}; try another --port"
            ) from None
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        await fakes.stop()
        raise
    shown = f"[{host}]" if ":" in host else host
    return Demo(f"http://{shown}:{port}/", data_dir, fakes, runner, admin_password, user_password)


async def serve_demo(
    data_dir: Path, host: str, port: int, *, temporary: bool, echo: Callable[[str], None]
) -> None:
    """Run the demo until SIGINT (Ctrl-C) or SIGTERM, then stop everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows, where Ctrl-C cancels the demo instead.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    demo = await start_demo(data_dir, host, port)
    try:
        echo(demo.banner(temporary=temporary))
        if host not in (LOOPBACK, "localhost", "::1"):
            echo(
                f"Note: the fake services listen on {LOOPBACK} only, so Sign in with Plex works "
                "from this machine only."
            )
        await stop.wait()
        echo("Stopping the demo…")
    finally:
        await demo.stop()


def run(host: str, port: int, data_dir: Path | None, *, echo: Callable[[str], None]) -> None:
    """Run the demo in a folder of its own (``data_dir``, or a temporary one removed after)."""
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="medianest-demo-")) if data_dir is None else data_dir
    folder = folder.resolve()
    try:
        prepare_data_dir(folder)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_demo(folder, host, port, temporary=temporary, echo=echo))
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
