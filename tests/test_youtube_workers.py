"""`medianest worker` processes on Redis: the web process queues, workers download.

Real processes throughout: a `medianest serve`, workers started and killed as an operator
would, one PostgreSQL database and one Redis. Each job runs exactly once however many workers
share the queue; a cancel reaches the worker downloading; a worker killed mid-download leaves no
partial file and its job is retried by another; a restart of the web process loses no queued job.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import require, wait_for
from servers import Api, Server, Servers, _command, create_admin, sign_in

from medianest.core.crypto import generate_key
from medianest.testing.youtube import VideoSite, make_video

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

API = "/api/v1/youtube/downloads"
NAMES = [f"v{n}.mp4" for n in range(6)]


@dataclass
class Installation:
    """A web process, its workers, and the library they fill."""

    servers: Servers
    shared: dict[str, str]
    library: Path
    web: Server | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_web(self, name: str = "web") -> Server:
        self.web = self.servers.start(name, **self.shared)
        self.web.wait_ready()
        return self.web

    def restart_web(self) -> Server:
        assert self.web is not None
        self.web.stop()
        return self.start_web(self.web.name + "-again")

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        env = self.servers.environment("web", **self.shared)
        log = (self.servers.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [*_command(), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.workers[name] = process
        return process

    def worker_log(self, name: str) -> str:
        return (self.servers.directory / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for name, process in self.workers.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            print(f"----- output of medianest worker ({name}) -----")
            print(self.worker_log(name))
        self.servers.stop_all()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    require(shutil.which("ffmpeg"), "ffmpeg is not installed (apt-get install ffmpeg)")
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=3)


@pytest.fixture
async def site(clip: bytes) -> AsyncIterator[VideoSite]:
    async with VideoSite(files={name: clip for name in NAMES}) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def installation(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Installation]:
    shared = {
        "database_url": pg_url,
        "redis_url": redis_url,
        "secret_key": generate_key(),
        "jobs_concurrency": "2",
        "jobs_sweep_interval": "1",
    }
    found = Installation(Servers(tmp_path), shared, tmp_path / "library")
    found.library.mkdir()
    try:
        web = found.start_web()
        create_admin(web.env)
        api = Api(web.url)
        settings = {
            "library_path": str(found.library),
            "allow_any_host_for_tests": True,
            "downloads_per_hour": 100,
            "concurrent_per_user": 10,
            "stalled_after": 3,
        }
        # Settings are saved with a PUT, which the blocking Api client has no method for.
        put = urllib.request.Request(
            web.url + "/api/v1/plugins/youtube/settings",
            data=json.dumps(settings).encode(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        api._send(put)
        api.post("/api/v1/plugins/youtube/enable")
        yield found
    finally:
        found.stop()


def media_files(library: Path) -> list[Path]:
    return sorted(
        p
        for p in library.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(library).parts)
        and p.suffix in (".mp4", ".part")
    )


async def _rows(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with session.get(url + API) as response:
        assert response.status == 200, await response.text()
        return list((await response.json())["downloads"])


async def test_two_workers_share_the_queue_and_run_each_job_once(
    installation: Installation, site: VideoSite
) -> None:
    site.bytes_per_second = 60_000
    assert installation.web is not None
    url = installation.web.url
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await sign_in(session, url)
        async with session.ws_connect(url + "/ws") as ws:
            await ws.send_json({"action": "subscribe", "topics": ["youtube"]})
            assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
            ids = []
            for name in NAMES:
                async with session.post(url + API, json={"url": f"{site.url}/media/{name}"}) as r:
                    assert r.status == 200, await r.text()
                    ids.append((await r.json())["id"])
            installation.start_worker("w1")
            installation.start_worker("w2")
            # Progress and completion reach the web process's websockets from the workers.
            completed: set[str] = set()
            progressed: set[str] = set()
            while completed != set(ids):
                message = await ws.receive_json(timeout=60)
                data = message["data"]
                if message["event"] == "progress":
                    progressed.add(data["id"])
                elif data["status"] == "completed":
                    completed.add(data["id"])
        rows = await _rows(session, url)
    assert {r["status"] for r in rows} == {"completed"}
    assert all(r["attempts"] == 1 for r in rows), rows
    assert progressed == set(ids)
    # Each video was downloaded exactly once, and both workers took a share.
    assert site.completed == {name: 1 for name in NAMES}
    assert len(media_files(installation.library)) == len(NAMES)
    for name in ("w1", "w2"):
        assert "Processing" in installation.worker_log(name), installation.worker_log(name)


async def test_a_killed_worker_leaves_no_partial_file_and_its_job_is_retried(
    installation: Installation, site: VideoSite
) -> None:
    site.bytes_per_second = 15_000
    assert installation.web is not None
    url = installation.web.url
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await sign_in(session, url)
        async with session.post(url + API, json={"url": f"{site.url}/media/v0.mp4"}) as r:
            assert r.status == 200, await r.text()
            first = (await r.json())["id"]
        worker = installation.start_worker("doomed")

        async def under_way() -> bool:
            row = next(r for r in await _rows(session, url) if r["id"] == first)
            return row["status"] == "downloading" and row["percent"] > 10

        await wait_for(under_way, 30)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        # Nothing half-written where Plex looks.
        assert media_files(installation.library) == []

        # A job queued while no worker runs survives a restart of the web process.
        async with session.post(url + API, json={"url": f"{site.url}/media/v1.mp4"}) as r:
            assert r.status == 200, await r.text()
            second = (await r.json())["id"]
    installation.restart_web()
    url = installation.web.url
    site.bytes_per_second = 0
    installation.start_worker("rescuer")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, url)

        async def all_done() -> bool:
            rows = await _rows(session, url)
            return {r["status"] for r in rows} == {"completed"}

        await wait_for(all_done, 60)
        rows = {r["id"]: r for r in await _rows(session, url)}
    assert rows[first]["attempts"] == 2
    assert rows[second]["attempts"] == 1
    assert [p.name for p in media_files(installation.library)] == ["v0.mp4", "v1.mp4"]
    assert not list((installation.library / ".incoming").glob("*/*"))


async def test_cancel_reaches_the_worker_that_is_downloading(
    installation: Installation, site: VideoSite
) -> None:
    site.bytes_per_second = 10_000
    assert installation.web is not None
    url = installation.web.url
    installation.start_worker("w1")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, url)
        async with session.post(url + API, json={"url": f"{site.url}/media/v2.mp4"}) as r:
            assert r.status == 200, await r.text()
            download = (await r.json())["id"]

        async def under_way() -> bool:
            row = next(r for r in await _rows(session, url) if r["id"] == download)
            return row["status"] == "downloading" and row["percent"] > 5

        await wait_for(under_way, 30)
        async with session.delete(f"{url}{API}/{download}") as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["status"] == "cancelled"

        async def stopped() -> bool:
            # The worker stops yt-dlp and clears what it had written.
            return not list((installation.library / ".incoming").glob("*/*"))

        await wait_for(stopped, 15)
        row = next(r for r in await _rows(session, url) if r["id"] == download)
    assert row["status"] == "cancelled"
    assert media_files(installation.library) == []
    assert site.completed == {}
