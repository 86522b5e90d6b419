"""What an operator relies on: readiness, metrics, the system page, and logs.

``/readyz`` goes unready when the database or Redis goes away (a real PostgreSQL database dropped,
a real Redis server stopped) but not when an upstream service is down; ``/metrics`` answers only
its token or allowed addresses and counts by route template; the system page lists everything.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, MakeClient, _pg_admin, free_port, require
from request_world import FILM, world

from medianest import Metric, __version__, hookimpl
from medianest.core.settings import Settings, load_settings
from medianest.testing import FakeTMDB

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus's text format."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")) and not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def components(client: Any) -> dict[str, str]:
    found = await (await client.get("/readyz")).json()
    return {c["name"]: c["status"] for c in found["components"]}


async def test_ready_when_the_database_answers_and_not_when_it_is_gone(
    make_client: MakeClient, tmp_path: Path, pg_url: str
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", database_url=pg_url)
    client = await make_client(settings, sign_in=False)
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready"
    assert await components(client) == {
        "database": "ok",
        "migrations": "ok",
        "redis": "not configured",
    }
    # The database is dropped under the running process: unready, and it says why.
    name = pg_url.rsplit("/", 1)[1]
    await _pg_admin(pg_url.rsplit("/", 1)[0] + "/postgres", f'DROP DATABASE "{name}" WITH (FORCE)')
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "not ready"
    database = next(c for c in body["components"] if c["name"] == "database")
    assert database["status"] == "down" and database["message"]
    # Alive all the same.
    assert (await client.get("/healthz")).status == 200


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, which the test may stop."""
    binary = shutil.which("redis-server")
    require(binary, "redis-server is not installed")
    assert binary is not None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.kill()
        process.wait()


async def test_unready_without_redis_but_an_upstream_down_is_only_listed(
    make_client: MakeClient, tmp_path: Path, private_redis: tuple[str, Any]
) -> None:
    url, process = private_redis
    settings = load_settings(data_dir=tmp_path / "data", redis_url=url)
    async with FakeTMDB() as tmdb:
        client = await make_client(settings)
        body = {"api_key": tmdb.api_key, "api_url": tmdb.url}
        assert (await client.put("/api/v1/plugins/tmdb/settings", json=body)).status == 200
        assert (await client.post("/api/v1/plugins/tmdb/enable")).status == 200
        assert (await components(client))["redis"] == "ok"
    # TMDB is gone (its fake stopped): listed as down, MediaNest still ready.
    resp = await client.get("/readyz")
    found = await resp.json()
    assert resp.status == 200, found
    assert [s["plugin"] for s in found["services"]] == ["tmdb"]
    # Redis stops: unready (as a probe, which has no session, sees it).
    process.kill()
    process.wait()
    probe = Client(client.server)
    await probe.start_server()
    resp = await probe.get("/readyz")
    assert resp.status == 503
    assert (await components(probe))["redis"] == "down"


async def test_with_redis_gone_pages_and_the_api_say_so_rather_than_fail(
    make_client: MakeClient, tmp_path: Path, private_redis: tuple[str, Any]
) -> None:
    url, process = private_redis
    client = await make_client(load_settings(data_dir=tmp_path / "data", redis_url=url))
    assert (await client.get("/api/v1/dashboard")).status == 200
    process.kill()
    process.wait()
    # Every signed-in request reads its session from Redis.
    resp = await client.get("/api/v1/dashboard")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    error = (await resp.json())["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("MediaNest cannot reach Redis right now")
    page = await client.get("/", headers={"Accept": "text/html"})
    assert page.status == 503
    assert "MediaNest cannot reach Redis right now" in await page.text()


async def test_metrics_need_the_token_or_an_allowed_address(
    make_client: MakeClient, sqlite_settings: Settings, tmp_path: Path
) -> None:
    open_ = await make_client(sqlite_settings, sign_in=False)
    resp = await open_.get("/metrics")
    assert resp.status == 200  # loopback is allowed by default
    assert "medianest_build_info" in await resp.text()

    guarded = await make_client(
        load_settings(data_dir=tmp_path / "guarded", metrics_token=METRICS_TOKEN), sign_in=False
    )
    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        resp = await guarded.get("/metrics", headers=headers)
        assert resp.status == 403
        assert "MEDIANEST_METRICS_TOKEN" in await resp.text()
    resp = await guarded.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status == 200

    elsewhere = await make_client(
        load_settings(data_dir=tmp_path / "elsewhere", metrics_allow="10.0.0.0/8"), sign_in=False
    )
    assert (await elsewhere.get("/metrics")).status == 403


@pytest.mark.usefixtures("fast")
async def test_metrics_count_routes_requests_decisions_and_connections(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, sqlite_settings, plugins=("tmdb",)) as w:
        # The metrics are the process's: other tests of this process may have counted already.
        at_start = await (await w.admin.get("/metrics")).text()
        created = await (
            await w.friend.post("/api/v1/requests", json={"media_type": "movie", "tmdb_id": FILM})
        ).json()
        request_id = created["request"]["id"]
        for _ in range(3):
            assert (await w.friend.get(f"/api/v1/requests/{request_id}")).status == 200
        assert (await w.friend.get("/api/v1/requests/not-a-request")).status == 404
        ws = await w.friend.ws_connect("/ws")
        text = await (await w.admin.get("/metrics")).text()
        route = "/api/v1/requests/{id}"

        def counted(name: str, **labels: str) -> float:
            return (metric(text, name, **labels) or 0) - (metric(at_start, name, **labels) or 0)

        # (Other methods are counted on the same route: DELETE, say, by other tests.)
        get = {"route": route, "method": "GET"}
        assert counted("medianest_http_requests_total", **get, status="200") == 3
        assert counted("medianest_http_requests_total", **get, status="404") == 1
        assert request_id not in text
        assert counted("medianest_http_request_duration_seconds_count", **get) == 4
        assert metric(text, "medianest_requests", status="pending") == 1
        assert metric(text, "medianest_active_users") == 2
        assert metric(text, "medianest_websocket_connections") == 1
        assert metric(text, "medianest_dependency_up", dependency="database") == 1
        assert metric(text, "medianest_plugin_health", plugin="tmdb", check="TMDB") == 1
        before = metric(text, "medianest_request_decisions_total", decision="approved") or 0
        assert (await w.admin.post(f"/api/v1/requests/{request_id}/approve", json={})).status == 200
        text = await (await w.admin.get("/metrics")).text()
        assert metric(text, "medianest_request_decisions_total", decision="approved") == before + 1
        await ws.close()


async def test_the_system_page_lists_components_and_services(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, sqlite_settings, plugins=("tmdb",)) as w:
        page = await (await w.admin.get("/admin/system")).text()
        assert re.search(r'data-component="database".*?ok', page, re.S)
        assert 'data-service="tmdb:TMDB"' in page
        system = await (await w.admin.get("/api/v1/system")).json()
        assert system["status"] == "ready"
        assert [(c["plugin"], c["state"]) for c in system["clients"]] == [("tmdb", "ok")]
        assert (await w.friend.get("/admin/system")).status == 403
        assert (await w.friend.get("/api/v1/system")).status == 403


def test_log_levels_are_checked() -> None:
    from medianest.core.settings import SettingsError

    settings = load_settings(log_levels="medianest.plugins.plex=debug, aiohttp.access=warning")
    assert settings.log_levels
    with pytest.raises(SettingsError) as caught:
        load_settings(log_levels="plex:debug")
    assert "MEDIANEST_LOG_LEVELS: 'plex:debug' is not logger=level" in str(caught.value)


async def test_request_ids_are_sent_back(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    client = await make_client(sqlite_settings, sign_in=False)
    resp = await client.get("/healthz", headers={"X-Request-ID": "edge-0123456789"})
    assert resp.headers["X-Request-ID"] == "edge-0123456789"
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    made = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", made)
    resp = await client.get("/nowhere")
    assert resp.status == 404 and re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Request-ID"])
    await asyncio.sleep(0)


async def test_metrics_show_the_job_queue_and_job_outcomes(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    from medianest import JobType
    from medianest.core.keys import REGISTRY

    client = await make_client(sqlite_settings, sign_in=False)
    jobs = client.app[REGISTRY].jobs
    assert jobs is not None
    release = asyncio.Event()

    async def slow(run: Any, fail: bool = False) -> None:
        await release.wait()
        if fail:
            raise RuntimeError("broken on purpose")

    jobs.register(JobType("test.slow", slow, attempts=2, retry_delay=0.01))
    for n in range(5):
        assert await jobs.enqueue("test.slow", f"job-{n}", fail=n == 4)
    await asyncio.sleep(0.1)
    text = await (await client.get("/metrics")).text()
    assert metric(text, "medianest_jobs_queue_depth") == 2  # three run at once, two wait
    release.set()

    async def settled() -> bool:
        found = await (await client.get("/metrics")).text()
        return metric(found, "medianest_jobs_total", job_type="test.slow", outcome="failed") == 1

    from conftest import wait_for

    await wait_for(settled)
    text = await (await client.get("/metrics")).text()
    assert metric(text, "medianest_jobs_total", job_type="test.slow", outcome="ok") == 4
    assert metric(text, "medianest_jobs_total", job_type="test.slow", outcome="retried") == 1
    assert metric(text, "medianest_jobs_queue_depth") == 0


def test_a_worker_serves_its_own_metrics(tmp_path: Path, redis_url: str) -> None:
    from servers import Servers, _command

    servers = Servers(tmp_path)
    port = free_port()
    env = servers.environment(
        "worker",
        redis_url=redis_url,
        worker_metrics_port=str(port),
        metrics_token=METRICS_TOKEN,
    )
    subprocess.run([*_command(), "migrate"], env=env, check=True, capture_output=True)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([*_command(), "worker"], env=env, stdout=out, stderr=out)
    try:
        import urllib.error
        import urllib.request

        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        while True:
            request = urllib.request.Request(
                url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=1) as answer:
                    text = answer.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert metric(text, "medianest_jobs_queue_depth") == 0
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=2)
        assert refused.value.code == 403
    finally:
        worker.terminate()
        worker.wait(timeout=15)


class GaugesPlugin:
    """A plugin exporting gauges: one with labels, one plain, one that fails to read."""

    def __init__(self) -> None:
        self.shelves = {"fiction": 3, "poetry": 1}

    @hookimpl
    def register_metrics(self) -> list[Metric]:
        return [
            Metric("medianest_shelf_books", "Books by shelf.", self.books, labels=("shelf",)),
            Metric("medianest_shelf_readers", "Readers today.", lambda: 7),
            Metric("medianest_shelf_broken", "Always fails.", self.broken),
        ]

    async def books(self, plugin: Any) -> dict[str, int]:
        assert plugin.name == "shelf"
        return self.shelves

    def broken(self) -> float:
        raise RuntimeError("the shelf fell over")


async def test_plugins_export_their_own_gauges_while_enabled(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    client = await make_client(sqlite_settings, [("shelf", GaugesPlugin())])
    # Declared, but not read while the plugin is disabled.
    text = await (await client.get("/metrics")).text()
    assert "# TYPE medianest_shelf_books gauge" in text
    assert metric(text, "medianest_shelf_books", shelf="fiction") is None

    assert (await client.post("/api/v1/plugins/shelf/enable")).status == 200
    text = await (await client.get("/metrics")).text()
    assert metric(text, "medianest_shelf_books", shelf="fiction") == 3
    assert metric(text, "medianest_shelf_books", shelf="poetry") == 1
    assert metric(text, "medianest_shelf_readers") == 7
    # A gauge that fails to read has no value; the others and the core's metrics are there.
    assert metric(text, "medianest_shelf_broken") is None
    assert metric(text, "medianest_build_info", version=__version__) == 1
    plugins = (await (await client.get("/api/v1/plugins")).json())["plugins"]
    shelf = next(p for p in plugins if p["name"] == "shelf")
    assert "the shelf fell over" in shelf["hook_errors"]["metric medianest_shelf_broken"]


async def test_the_youtube_plugin_exports_its_downloads_by_status(
    make_client: MakeClient, sqlite_settings: Settings, tmp_path: Path
) -> None:
    from medianest_plugins.youtube.models import YouTubeDownload

    from medianest.core.keys import ENGINE

    client = await make_client(sqlite_settings)
    library = tmp_path / "library"
    library.mkdir()
    saved = await client.put(
        "/api/v1/plugins/youtube/settings", json={"library_path": str(library)}
    )
    assert saved.status == 200, await saved.text()
    assert (await client.post("/api/v1/plugins/youtube/enable")).status == 200
    me = (await (await client.get("/api/v1/auth/me")).json())["id"]
    async with client.app[ENGINE].begin() as conn:
        for status in ("completed", "completed", "failed"):
            await conn.execute(
                YouTubeDownload.__table__.insert().values(
                    id=uuid.uuid4(), user_id=uuid.UUID(me), url="https://youtu.be/x",
                    kind="video", source_id=uuid.uuid4().hex, title="x", options={},
                    status=status, percent=0.0, item=0, items=0, size_kib=0, attempts=0,
                    files=[], created_at=datetime.now(UTC),
                )
            )  # fmt: skip
    text = await (await client.get("/metrics")).text()
    assert metric(text, "medianest_downloads", status="completed") == 2
    assert metric(text, "medianest_downloads", status="failed") == 1
