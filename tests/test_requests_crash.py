"""A crash between approval and fulfilment loses no request and adds nothing twice.

A real ``medianest serve`` process is killed (SIGKILL) while Radarr is being asked to add an
approved film, then started again on the same database: the request is taken up again once the
dead process's lease has run out, and Radarr ends up with the film exactly once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import wait_for
from request_world import FILM, arr_instance
from servers import Server, Servers, create_admin, sign_in

from medianest.testing import FakeRadarr, FakeTMDB


class AddThenHangRadarr(FakeRadarr):
    """A Radarr that adds the film, then never answers: MediaNest dies before it hears back."""

    hanging: bool = True

    async def post_movie(self, request: web.Request) -> web.StreamResponse:
        answer = await super().post_movie(request)
        if self.hanging:
            await asyncio.Event().wait()
        return answer


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path)
    try:
        yield found
    finally:
        found.stop_all()


@pytest.fixture
async def tmdb() -> AsyncIterator[FakeTMDB]:
    async with FakeTMDB() as server:
        yield server


@pytest.fixture
async def radarr() -> AsyncIterator[AddThenHangRadarr]:
    async with AddThenHangRadarr() as server:
        yield server


def start(servers: Servers) -> Server:
    # A short lease, so that the restarted process takes the request over within seconds.
    server = servers.start("app", fulfilment_lease="2", log_level="info")
    server.wait_ready()
    return server


async def request_status(session: aiohttp.ClientSession, url: str, request_id: str) -> str:
    async with session.get(f"{url}/api/v1/requests/{request_id}") as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["status"])


async def configure(
    session: aiohttp.ClientSession, url: str, tmdb: FakeTMDB, radarr: FakeRadarr
) -> None:
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("tmdb", {"api_key": tmdb.api_key, "api_url": tmdb.url}),
        ("arr", {"radarr": [arr_instance(radarr, "Radarr")], "sonarr": []}),
    ]
    for plugin, body in bodies:
        async with session.put(f"{url}/api/v1/plugins/{plugin}/settings", json=body) as resp:
            assert resp.status == 200, await resp.text()
        async with session.post(f"{url}/api/v1/plugins/{plugin}/enable") as resp:
            assert resp.status == 200, await resp.text()


async def test_a_crash_mid_fulfilment_resumes_on_restart_without_adding_twice(
    servers: Servers, tmdb: FakeTMDB, radarr: AddThenHangRadarr
) -> None:
    create_admin(servers.environment("app", fulfilment_lease="2"))
    server = servers.start("app", fulfilment_lease="2")
    server.wait_ready()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await sign_in(session, server.url)
        await configure(session, server.url, tmdb, radarr)
        # The admin's own request is approved at once and handed to Radarr, which adds the
        # film and never answers.
        body = {"media_type": "movie", "tmdb_id": FILM}
        async with session.post(f"{server.url}/api/v1/requests", json=body) as resp:
            assert resp.status == 201, await resp.text()
            request_id = (await resp.json())["request"]["id"]

        async def added() -> bool:
            return len(radarr.added_movies) == 1

        await wait_for(added, seconds=15)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)

    # Started again on the same database, Radarr answering normally again.
    radarr.hanging = False
    again = start(servers)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, again.url)

        async def processing() -> bool:
            return await request_status(session, again.url, request_id) == "processing"

        await wait_for(processing, seconds=20)
        async with session.get(f"{again.url}/api/v1/requests/{request_id}") as resp:
            history = [h["status"] for h in (await resp.json())["history"]]
    assert history == ["pending", "approved", "processing"]
    # One add in all: the second attempt found the film in Radarr already.
    assert len(radarr.added_movies) == 1
    assert len(radarr.movies) == 1
