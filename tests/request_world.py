"""A MediaNest with TMDB, Plex, Radarr and Sonarr set up against their fakes, for the request tests.

The fakes' catalogues hold films and series that Plex does not have yet: The Matrix Reloaded
(TMDB 604) for a film and Game of Thrones (TMDB 1399, TVDB 121361) for a series.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Client, MakeClient, add_user, wait_for
from medianest_plugins.arr import pollers as arr_pollers
from medianest_plugins.plex import pollers as plex_pollers

from medianest.core.settings import Settings, load_settings
from medianest.testing import FakePlexMediaServer, FakeRadarr, FakeSonarr, FakeTMDB

FILM = 604  # The Matrix Reloaded
SERIES = 1399  # Game of Thrones
SERIES_TVDB = 121361
PLEX_TOKEN = "owner-token-0123456789abcdef"
FRIEND = ("friend", "a friend's long password")
FAST = 0.2


def patch_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll Plex and the download queues every FAST seconds (before start-up)."""
    for coordinator in (plex_pollers.STATUS, plex_pollers.RECENT):
        monkeypatch.setattr(coordinator, "interval", FAST)
    for name in ("SECTIONS_TTL", "SCAN_CHECK_INTERVAL"):
        monkeypatch.setattr(plex_pollers, name, FAST)
    monkeypatch.setattr(arr_pollers.QUEUE, "interval", FAST)


@dataclass
class World:
    admin: Client
    friend: Client
    tmdb: FakeTMDB
    pms: FakePlexMediaServer
    radarr: FakeRadarr
    sonarr: FakeSonarr

    @property
    def app(self) -> Any:
        return self.admin.app


def tuned(settings: Settings, **extra: Any) -> Settings:
    """``settings`` with requests checked every 0.3 s."""
    return load_settings(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        request_check_interval=0.3,
        **extra,
    )


def arr_instance(fake: FakeRadarr | FakeSonarr, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": fake.url,
        "api_key": fake.api_key,
        "quality_profile_id": 4,
        "root_folder": fake.root_folders[0],
        "webhook_secret": "hook-secret-for-tests",
        **extra,
    }


async def _put_and_enable(client: Client, plugin: str, body: dict[str, Any]) -> None:
    resp = await client.put(f"/api/v1/plugins/{plugin}/settings", json=body)
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/api/v1/plugins/{plugin}/enable")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "active"


async def second_browser(client: Client, username: str, password: str, **user: Any) -> Client:
    """Another browser on the same MediaNest, signed in as a new user."""
    await add_user(client.app, username, password, **user)
    other = Client(client.server)
    await other.start_server()  # the server runs already: this only binds the client
    await other.sign_in(username, password)
    return other


async def _scanned(client: Client) -> bool:
    from medianest.core import hookspecs
    from medianest.core.keys import REGISTRY

    registry = client.app[REGISTRY]
    answer = await registry.call_plugin(
        "plex", hookspecs.check_availability, ids={"tmdb": "603"}, media_type="movie"
    )
    return answer is not None


@asynccontextmanager
async def world(
    make_client: MakeClient,
    settings: Settings,
    *,
    plugins: tuple[str, ...] = ("tmdb", "plex", "arr"),
) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        tmdb = await stack.enter_async_context(FakeTMDB())
        pms = await stack.enter_async_context(
            FakePlexMediaServer(name="Home Server", tokens={PLEX_TOKEN})
        )
        radarr = await stack.enter_async_context(FakeRadarr())
        sonarr = await stack.enter_async_context(FakeSonarr())
        admin = await make_client(settings)
        if "tmdb" in plugins:
            await _put_and_enable(admin, "tmdb", {"api_key": tmdb.api_key, "api_url": tmdb.url})
        if "plex" in plugins:
            await _put_and_enable(admin, "plex", {"url": pms.url, "token": PLEX_TOKEN})
            await wait_for(lambda: _scanned(admin), seconds=10)
        if "arr" in plugins:
            await _put_and_enable(
                admin,
                "arr",
                {
                    "radarr": [arr_instance(radarr, "Radarr")],
                    "sonarr": [arr_instance(sonarr, "Sonarr")],
                },
            )
        friend = await second_browser(admin, *FRIEND)
        yield World(admin, friend, tmdb, pms, radarr, sonarr)
