"""Shared fixtures: real SQLite files, and the machine's PostgreSQL and Redis when configured.

Tests that need PostgreSQL, Redis or chromium skip with the reason outside CI; with CI=true
(as `.ci/run` runs them) a missing service is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from medianest.app import create_app
from medianest.core.settings import Settings, load_settings
from medianest.testing import PortalClient

PG_ENV = "MEDIANEST_TEST_DATABASE_URL"
REDIS_ENV = "MEDIANEST_TEST_REDIS_URL"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: object, reason: str) -> None:
    """Skip the test when ``condition`` is false, or fail it in CI, where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test, but: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own MEDIANEST_* settings must not leak into the tests.
    for name in list(os.environ):
        if name.startswith("MEDIANEST_") and not name.startswith("MEDIANEST_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _apps_freed() -> Iterator[None]:
    """Let each test's applications go when it ends.

    aiohttp keeps the middleware chains it builds in a process-wide LRU cache of 1024 entries
    keyed by (handler, apps): every app a test made (its registry, database engine, caches, the
    fakes' data) stayed alive for hundreds of tests after. Millions of objects piled up, and a
    full garbage collection then stopped the event loop for 1.5 to 3.5 s in the middle of a
    test, so that its pollers ran late. (The cache is private to aiohttp: it is looked up, not
    assumed.)
    """
    yield
    from aiohttp import web_app

    chains = getattr(web_app, "_cached_build_middleware", None)
    if chains is not None and hasattr(chains, "cache_clear"):
        chains.cache_clear()


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plex and the download queues polled every few tenths of a second (see request_world)."""
    from request_world import patch_intervals  # it imports this module

    patch_intervals(monkeypatch)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    base = os.environ.get(PG_ENV)
    require(base, f"{PG_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    assert base is not None
    name = f"medianest_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(base, f'CREATE DATABASE "{name}"')
    prefix = base.rsplit("/", 1)[0]
    try:
        yield f"{prefix}/{name}"
    finally:
        await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The test Redis, emptied before and after the test."""
    from redis.asyncio import Redis

    url = os.environ.get(REDIS_ENV)
    require(url, f"{REDIS_ENV} is not set (e.g. redis://127.0.0.1:6379/15)")
    assert url is not None
    redis = Redis.from_url(url)
    await redis.flushdb()
    try:
        yield url
    finally:
        await redis.flushdb()
        await redis.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite file, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return load_settings(data_dir=tmp_path / "data")
    url = request.getfixturevalue("pg_url")
    return load_settings(data_dir=tmp_path / "data", database_url=url)


ADMIN = ("admin", "correct horse battery")


class Client(PortalClient):
    """A test client that, once signed in, sends its session's CSRF token with state changes,
    as MediaNest's own pages do (the plugin authors' test kit's client, with its helpers)."""


def completed_download(
    download_id: uuid.UUID, user_id: uuid.UUID, now: datetime.datetime
) -> dict[str, Any]:
    """A row of the youtube plugin's downloads table: one video, downloaded (for the tests of
    what migrations and backups keep)."""
    return {
        "id": download_id,
        "user_id": user_id,
        "url": "https://youtu.be/abc",
        "kind": "video",
        "source_id": "abc",
        "title": "A video",
        "options": {},
        "status": "completed",
        "percent": 100.0,
        "item": 1,
        "items": 1,
        "size_kib": 2048,
        "attempts": 1,
        "files": [],
        "created_at": now,
    }


async def add_user(
    app: Any,
    username: str,
    password: str,
    *,
    role: str = "user",
    permissions: frozenset[str] | None = None,
) -> Any:
    """Create a local account directly in the app's database (by default with a new user's
    permissions: the core's and the installed plugins' defaults)."""
    from medianest.core.auth import create_local_user
    from medianest.core.keys import ENGINE, REGISTRY

    return await create_local_user(
        app[ENGINE],
        username,
        password,
        role=role,
        permissions=app[REGISTRY].default_permissions() if permissions is None else permissions,
    )


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Start a real MediaNest app on loopback and return a client for it, signed in as an
    administrator unless ``sign_in=False``."""
    clients: list[Client] = []

    async def make(settings: Settings, extra_plugins: Any = (), *, sign_in: bool = True) -> Client:
        app = await create_app(settings, extra_plugins=extra_plugins)
        client = Client(TestServer(app))
        await client.start_server()
        clients.append(client)
        if sign_in:
            from medianest.core.auth import admin_exists
            from medianest.core.keys import ENGINE

            if not await admin_exists(app[ENGINE]):
                await add_user(app, *ADMIN, role="admin")
            await client.sign_in(*ADMIN)
        return client

    yield make
    for client in reversed(clients):
        await client.close()


# How Debian's chromium runs headless here (the browser tests' one launch recipe).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture
def chromium() -> Iterator[str]:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    require(os.path.exists(path), "chromium is not installed (apt-get install chromium)")
    yield path


async def wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``seconds`` seconds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.05)


async def reload_widgets(
    clients: list[TestClient], plugin: str, widgets: Iterable[str], seconds: float, each: int = 5
) -> int:
    """Many viewers reloading every widget of ``plugin`` for ``seconds``; returns how many
    views were served (every one of them a 200)."""
    served = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers = await asyncio.gather(
            *(
                c.get(f"/widgets/{plugin}/{w}")
                for c in clients
                for w in widgets
                for _ in range(each)
            )
        )
        assert {a.status for a in answers} == {200}
        served += len(answers)
    return served


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Chromium driven by Playwright's asyncio API, for tests that run MediaNest or fakes in
    their own event loop. (tests/test_browser.py uses the synchronous API, with a fixture of
    its own.)"""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        async_playwright = None
    require(async_playwright is not None, "Playwright is not installed (pip install playwright)")
    assert async_playwright is not None
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()
