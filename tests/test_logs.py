"""The logs of a whole journey, from a real ``medianest serve`` at debug level: JSON lines with
request ids, and not one of the secrets configured or used along the way.

Integrations are set up with their keys, a friend signs in, asks for a film, an admin approves it
and Radarr gets it, a Sonarr webhook arrives with its secret in the query string, and Prometheus
scrapes with its token. Then every line of the log is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import ADMIN, wait_for
from request_world import FILM, FRIEND, PLEX_TOKEN, arr_instance
from servers import Servers, create_admin, sign_in

from medianest.testing import FakePlexMediaServer, FakeRadarr, FakeSonarr, FakeTMDB

METRICS_TOKEN = "prometheus-scrape-token-0123456789abcdef"
REQUEST_ID = "edge-request-0123456789"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path)
    try:
        yield found
    finally:
        found.stop_all()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTMDB, FakePlexMediaServer, FakeRadarr, FakeSonarr]]:
    async with (
        FakeTMDB() as tmdb,
        FakePlexMediaServer(name="Home Server", tokens={PLEX_TOKEN}) as pms,
        FakeRadarr() as radarr,
        FakeSonarr() as sonarr,
    ):
        yield tmdb, pms, radarr, sonarr


async def test_a_journey_logs_json_with_request_ids_and_no_secret(
    servers: Servers, fakes: tuple[Any, ...], tmp_path: Path
) -> None:
    tmdb, pms, radarr, sonarr = fakes
    settings = {"log_level": "debug", "log_format": "json", "metrics_token": METRICS_TOKEN}
    create_admin(servers.environment("app", **settings))
    server = servers.start("app", **settings)
    server.wait_ready()
    secrets: dict[str, str] = {
        "TMDB key": tmdb.api_key,
        "Plex token": PLEX_TOKEN,
        "Radarr key": radarr.api_key,
        "Sonarr key": sonarr.api_key,
        "webhook secret": arr_instance(radarr, "x")["webhook_secret"],
        "admin password": ADMIN[1],
        "friend password": FRIEND[1],
        "metrics token": METRICS_TOKEN,
    }
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as admin:
        await sign_in(admin, server.url)
        for plugin, body in (
            ("tmdb", {"api_key": tmdb.api_key, "api_url": tmdb.url}),
            ("plex", {"url": pms.url, "token": PLEX_TOKEN}),
            (
                "arr",
                {
                    "radarr": [arr_instance(radarr, "Radarr")],
                    "sonarr": [arr_instance(sonarr, "Sonarr")],
                },
            ),
        ):
            async with admin.put(f"{server.url}/api/v1/plugins/{plugin}/settings", json=body) as r:
                assert r.status == 200, await r.text()
            async with admin.post(f"{server.url}/api/v1/plugins/{plugin}/enable") as r:
                assert r.status == 200, await r.text()
        # A second local account, as an operator makes one.
        create_admin(server.env, *FRIEND)
        secrets["admin session"] = next(c.value for c in jar if c.key == "medianest_session")
        secrets["admin CSRF token"] = admin.headers["X-CSRF-Token"]

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as friend:
            await sign_in(friend, server.url, *FRIEND)
            body = {"media_type": "movie", "tmdb_id": FILM}
            async with friend.post(
                f"{server.url}/api/v1/requests", json=body, headers={"X-Request-ID": REQUEST_ID}
            ) as r:
                assert r.status in (201, 200), await r.text()
                request_id = (await r.json())["request"]["id"]
                assert r.headers["X-Request-ID"] == REQUEST_ID
        async with admin.post(f"{server.url}/api/v1/requests/{request_id}/approve", json={}) as r:
            assert r.status in (200, 409), await r.text()

        async def added() -> bool:
            return len(radarr.added_movies) == 1

        await wait_for(added, seconds=15)
        hook = {"eventType": "Test", "instanceName": "Sonarr"}
        secret = secrets["webhook secret"]
        async with aiohttp.ClientSession() as outsider:
            async with outsider.post(
                f"{server.url}/arr/webhook/sonarr/0?secret={secret}", json=hook
            ) as r:
                assert r.status == 200, await r.text()
            async with outsider.get(
                f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            ) as r:
                assert r.status == 200
    server.stop()

    lines = [line for line in server.output().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert len(records) > 20
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    # The friend's request can be followed through the log by its id.
    tagged = [r for r in records if r.get("request_id") == REQUEST_ID]
    assert any(
        r["logger"] == "aiohttp.access" and r.get("path") == "/api/v1/requests" for r in tagged
    )
    # The webhook's line has its path, not its query string.
    hooks = [r for r in records if r.get("path") == "/arr/webhook/sonarr/0"]
    assert hooks and all("?" not in r["message"] for r in hooks)
    text = server.output()
    leaked = [name for name, value in secrets.items() if value and value in text]
    assert leaked == []
