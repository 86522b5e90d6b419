"""Two real ``medianest serve`` processes on one PostgreSQL database and one Redis.

What an operator running several processes behind a load balancer relies on: they can start
together on an empty database, and a change or an event on one is seen on the other at once.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from conftest import require, wait_for
from servers import Server, Servers, create_admin, sign_in
from yarl import URL

from medianest.core import db
from medianest.core.auth import SESSION_COOKIE
from medianest.core.crypto import generate_key
from medianest.core.db import head_revision
from medianest.core.settings import load_settings

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# A change made on one process must be visible on the other within this many seconds.
PROPAGATION = 1.0


@pytest.fixture
def example_installed() -> None:
    found = importlib.metadata.entry_points(group="medianest.plugins", name="example")
    require(
        found, "the example plugin is not installed (pip install -e examples/medianest-example)"
    )


@pytest.fixture
def pair(
    example_installed: None, pg_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[Server, Server]]:
    """Processes A and B, started at the same moment on a new, empty database, with an
    administrator made with ``medianest create-admin`` once they run."""
    servers = Servers(tmp_path)
    # Processes behind one load balancer share the secret key, as they share the database.
    shared = {"database_url": pg_url, "redis_url": redis_url, "secret_key": generate_key()}
    try:
        a = servers.start("a", **shared)
        b = servers.start("b", **shared)
        a.wait_ready()
        b.wait_ready()
        create_admin(a.env)
        yield a, b
    finally:
        servers.stop_all()


@pytest.fixture
async def http(pair: tuple[Server, Server]) -> Any:
    """A client signed in on A. Cookies do not tell ports apart, so it sends the same session
    cookie to B, as a browser behind a load balancer reaches whichever process answers."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        await sign_in(session, pair[0].url)
        yield session


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def post(http: aiohttp.ClientSession, url: str, body: Any = None) -> Any:
    async with http.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def until_answered(http: aiohttp.ClientSession, url: str, status: int) -> None:
    """Wait until ``url`` answers ``status``, for at most the propagation delay."""

    async def answered() -> bool:
        return await status_of(http, url) == status

    await wait_for(answered, seconds=PROPAGATION)


async def subscribe(ws: aiohttp.ClientWebSocketResponse, topic: str) -> None:
    await ws.send_json({"action": "subscribe", "topics": [topic]})
    reply = await ws.receive_json(timeout=5)
    assert reply == {"type": "subscribed", "topics": [topic]}


async def next_event(ws: aiohttp.ClientWebSocketResponse, topic: str) -> dict[str, Any]:
    while True:
        message = await ws.receive_json(timeout=PROPAGATION)
        if message.get("topic") == topic:
            return dict(message)


async def test_start_together_on_an_empty_database(
    pair: tuple[Server, Server], pg_url: str, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    for server in pair:
        async with http.get(server.url + "/api/v1/plugins") as response:
            assert response.status == 200, server.output()
            names = {p["name"] for p in (await response.json())["plugins"]}
        assert {"example", "plex", "tmdb"} <= names
    # Whichever took the migration lock first created the schema; the other used it.
    conn = await asyncpg.connect(pg_url)
    try:
        versions = await conn.fetch("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    # One row per branch (the core's and each installed plugin's), each at its newest.
    rows = [row["version_num"] for row in versions]
    assert head_revision() in rows and len(rows) == len(set(rows))
    engine = db.create_engine(load_settings(database_url=pg_url))
    try:
        assert (await db.schema_status(engine)).complete
    finally:
        await engine.dispose()
    assert a.process.poll() is None and b.process.poll() is None


# A process that opens the database, says so, and at the moment it reads from its standard
# input either creates the schema as the first start does ("create"), or watches what a
# process starting at each instant would find until the schema is there ("watch"): a new
# database (it would create the schema) or a current one, never anything it would refuse.
_START_SCRIPT = """
import asyncio, sys, time
from medianest.core import db
from medianest.core.settings import load_settings

async def main(url, data_dir, role):
    engine = db.create_engine(load_settings(data_dir=data_dir, database_url=url))
    try:
        async with engine.connect():
            pass
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        if role == "create":
            await db.check_schema(engine)
            return 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = await db.schema_status(engine)
            if status.up_to_date:
                await db.check_schema(engine)
                return 0
            if not status.empty:
                print("a start now would be refused:", db.schema_problem(status))
                return 1
        print("the schema was not created within 20 s")
        return 1
    finally:
        await engine.dispose()

sys.exit(asyncio.run(main(*sys.argv[1:])))
"""


async def test_a_start_during_the_first_migration_finds_a_usable_database(
    pg_url: str, tmp_path: Path
) -> None:
    # The moment the schema appears falls between two reads of a watcher only sometimes;
    # several watchers make it likely that a start which would be refused then is caught.
    roles = ["create", "watch", "watch", "watch", "watch"]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _START_SCRIPT,
            pg_url,
            str(tmp_path),
            role,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for role in roles
    ]
    try:
        for p in processes:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 30)
            assert line == b"ready\n", line + await p.stdout.read()
        # The watchers start a little before the creation, so that they see all of it.
        start_at = time.time() + 0.1
        for p, role in zip(processes, roles, strict=True):
            assert p.stdin is not None
            p.stdin.write(f"{start_at + (0.05 if role == 'create' else 0)}\n".encode())
        results = [await asyncio.wait_for(p.communicate(), 30) for p in processes]
    finally:
        for p in processes:
            if p.returncode is None:
                p.kill()
                await p.wait()
    outputs = [out.decode() for out, _ in results]
    assert [p.returncode for p in processes] == [0] * len(processes), outputs


async def test_toggle_on_one_process_applies_on_the_other(
    pair: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    assert await status_of(http, b.url + "/example/hello") == 404

    enabled = await post(http, a.url + "/api/v1/plugins/example/enable")
    assert enabled["status"] == "active"
    await until_answered(http, b.url + "/example/hello", 200)
    async with http.get(b.url + "/example/hello") as response:
        assert await response.json() == {"greeting": "Hello from the example plugin!"}
    async with http.get(b.url + "/") as response:
        assert 'id="widget-example-hello"' in await response.text()

    await post(http, b.url + "/api/v1/plugins/example/disable")
    await until_answered(http, a.url + "/example/hello", 404)
    async with http.get(a.url + "/") as response:
        assert 'id="widget-example-hello"' not in await response.text()


async def test_event_published_on_one_process_reaches_clients_of_the_other(
    pair: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    await post(http, a.url + "/api/v1/plugins/example/enable")
    await until_answered(http, b.url + "/example/hello", 200)

    async with http.ws_connect(b.url + "/ws") as ws:
        await subscribe(ws, "example.pings")
        sent = await post(http, a.url + "/example/ping", {"message": "from A"})
        event = await next_event(ws, "example.pings")
    assert event["event"] == "ping"
    assert event["data"] == sent
    assert sent["message"] == "from A"

    # Both processes share the cache, so B's widget shows the ping sent through A.
    async with http.get(b.url + "/widgets/example/hello") as response:
        assert response.status == 200
        assert "from A" in await response.text()


async def test_client_of_one_process_sees_toggle_made_on_the_other(
    pair: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    async with http.ws_connect(a.url + "/ws") as ws:
        await subscribe(ws, "plugins")
        await post(http, b.url + "/api/v1/plugins/example/enable")
        event = await next_event(ws, "plugins")
        assert event["event"] == "changed"
        assert event["data"]["name"] == "example"
        assert event["data"]["enabled"] is True
        assert event["data"]["status"] == "active"
        # A has applied the change by the time it tells its clients.
        assert await status_of(http, a.url + "/example/hello") == 200

        await post(http, b.url + "/api/v1/plugins/example/disable")
        event = await next_event(ws, "plugins")
        assert (event["data"]["name"], event["data"]["status"]) == ("example", "inactive")
    assert await status_of(http, a.url + "/example/hello") == 404


async def test_signing_out_on_one_process_ends_the_session_on_the_other(
    pair: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    assert await status_of(http, b.url + "/api/v1/auth/me") == 200
    assert await status_of(http, a.url + "/api/v1/auth/me") == 200
    cookie = http.cookie_jar.filter_cookies(URL(a.url))[SESSION_COOKIE].value
    await post(http, b.url + "/api/v1/auth/logout")
    # A had the session in the shared cache; it is refused there at the next request.
    async with aiohttp.ClientSession(headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}) as stale:
        assert await status_of(stale, a.url + "/api/v1/auth/me") == 401
        assert await status_of(stale, a.url + "/api/v1/plugins") == 401


async def test_each_stops_cleanly_with_clients_connected(
    pair: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a = pair[0]
    async with http.ws_connect(a.url + "/ws") as ws:
        await subscribe(ws, "plugins")
        for server in pair:
            server.process.terminate()
        # The client is told the server is going away (and reconnects to another process).
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    codes = await asyncio.gather(*(asyncio.to_thread(server.process.wait, 10) for server in pair))
    assert codes == [0, 0]
