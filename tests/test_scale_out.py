"""The deployment scaled out, from real processes on this machine: nginx (the deployment's own
configuration) in front of two ``medianest serve`` processes, one ``medianest worker``, one
PostgreSQL database and one Redis.

The two portal processes listen on the same port at 127.0.0.1 and 127.0.0.2, and nginx finds
them as it finds replicas in Docker, through DNS. Requests go through nginx, as a browser's do;
each process's own access log (the request id the client sent) or metrics tell which one
answered. One journey over one topology, step by step, as starting it takes most of the time.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import free_port, require, wait_for
from prometheus_client.parser import text_string_to_metric_families
from servers import Server, Servers, _command, create_admin, sign_in
from topology import NGINX_CONF, FakeDockerDns, RunningNginx, session, start_portal_at
from yarl import URL

from medianest.core.auth import SESSION_COOKIE
from medianest.core.crypto import generate_key
from medianest.testing.youtube import VideoSite, make_video

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# A change made on one process must be visible on the other within this many seconds.
PROPAGATION = 1.0
DOWNLOADS = "/api/v1/youtube/downloads"
TOKENS = "/api/v1/tokens"


@dataclass
class Topology:
    """nginx, portal processes A and B behind it, and the worker."""

    a: Server
    b: Server
    worker: subprocess.Popen[bytes]
    worker_log: Path
    nginx: RunningNginx
    library: Path

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def apps(self) -> tuple[Server, Server]:
        return self.a, self.b


@pytest.fixture
def clip(tmp_path: Path) -> bytes:
    require(shutil.which("ffmpeg"), "ffmpeg is not installed (apt-get install ffmpeg)")
    return make_video(tmp_path / "clip.mp4", seconds=2)


@pytest.fixture
def topology(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Topology]:
    found = importlib.metadata.entry_points(group="medianest.plugins", name="example")
    require(
        found, "the example plugin is not installed (pip install -e examples/medianest-example)"
    )
    servers = Servers(tmp_path)
    # Every process of one installation shares the database, Redis and the secret key.
    shared = {
        "database_url": pg_url,
        "redis_url": redis_url,
        "secret_key": generate_key(),
        "jobs_sweep_interval": "1",
        # The load below is one user making more API calls a minute than one is allowed.
        "rate_limit_api": "100000/minute",
    }
    library = tmp_path / "library"
    library.mkdir()
    dns = FakeDockerDns({"medianest-app": ["127.0.0.1", "127.0.0.2"]})
    nginx: RunningNginx | None = None
    worker: subprocess.Popen[bytes] | None = None
    worker_log = tmp_path / "worker.log"
    try:
        port = free_port()
        a = start_portal_at(servers, "a", "127.0.0.1", port, **shared)
        b = start_portal_at(servers, "b", "127.0.0.2", port, **shared)
        a.wait_ready()
        b.wait_ready()
        with worker_log.open("wb") as log:
            worker = subprocess.Popen(
                [*_command(), "worker"],
                env=servers.environment("worker", **shared),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        create_admin(a.env)
        nginx = RunningNginx(
            tmp_path / "nginx", NGINX_CONF.read_text(), port, dns, upstream_log=True
        )
        yield Topology(a, b, worker, worker_log, nginx, library)
    finally:
        if nginx is not None:
            nginx.stop()
        dns.stop()
        if worker is not None:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            print("----- output of medianest worker -----")
            print(worker_log.read_text(errors="replace"))
        servers.stop_all()


def answered(server: Server) -> list[dict[str, Any]]:
    """The requests ``server`` answered, from its access log (JSON, one object a line)."""
    entries = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "aiohttp.access":
                entries.append(entry)
    return entries


def answered_ids(server: Server, method: str, path: str, status: int) -> set[str]:
    return {
        e["request_id"]
        for e in answered(server)
        if (e["method"], e["path"], e["status"]) == (method, path, status)
    }


async def logged(servers: tuple[Server, ...], ids: set[str]) -> None:
    """Wait until the access logs hold the requests ``ids``: a line is written once the answer
    has been sent, and the client may read the answer first."""

    async def all_there() -> bool:
        seen = {e["request_id"] for server in servers for e in answered(server)}
        return ids <= seen

    await wait_for(all_there, 5)


def request_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


async def websocket_connections(server: Server) -> float:
    """``medianest_websocket_connections`` of one process, from its own /metrics."""
    async with aiohttp.ClientSession() as direct, direct.get(server.url + "/metrics") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    for family in text_string_to_metric_families(text):
        if family.name == "medianest_websocket_connections":
            return float(family.samples[0].value)
    raise AssertionError("no medianest_websocket_connections in /metrics")


async def test_the_scaled_out_deployment_through_nginx(topology: Topology, clip: bytes) -> None:
    async with session(auto_decompress=True) as http:
        await sign_in(http, topology.url)
        await signed_in_once_the_session_works_on_both(topology, http)
        await pages_on_both_hear_a_toggle_made_on_one(topology, http)
        await a_download_runs_once_on_the_worker(topology, http, clip)
        await a_process_killed_mid_load_loses_no_answered_request(topology, http)


async def signed_in_once_the_session_works_on_both(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    a, b = topology.apps
    sent = {request_id("me") for _ in range(30)}
    for rid in sent:
        async with http.get(topology.url + "/api/v1/auth/me", headers={"X-Request-ID": rid}) as r:
            assert r.status == 200, await r.text()
    await logged(topology.apps, sent)
    on_a = answered_ids(a, "GET", "/api/v1/auth/me", 200) & sent
    on_b = answered_ids(b, "GET", "/api/v1/auth/me", 200) & sent
    assert on_a and on_b, f"A answered {len(on_a)}, B {len(on_b)}"
    assert on_a | on_b == sent and not on_a & on_b


async def pages_on_both_hear_a_toggle_made_on_one(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    a, b = topology.apps
    url = topology.url
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    try:
        # Pages connect through nginx until each process holds some of them.
        for _ in range(40):
            ws = await http.ws_connect(url + "/ws", origin=url, heartbeat=None)
            sockets.append(ws)
            await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
            reply = await ws.receive_json(timeout=5)
            assert reply == {"type": "subscribed", "topics": ["plugins"]}
            if len(sockets) >= 4 and min([await websocket_connections(s) for s in (a, b)]) >= 2:
                break
        counts = [await websocket_connections(s) for s in (a, b)]
        assert min(counts) >= 2 and sum(counts) == len(sockets), counts

        # A toggle made on A itself (no nginx) applies on B within a second...
        cookie = http.cookie_jar.filter_cookies(URL(url))[SESSION_COOKIE].value
        async with aiohttp.ClientSession(headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}) as on_b:

            async def hello_on_b() -> int:
                async with on_b.get(b.url + "/example/hello") as response:
                    return response.status

            assert await hello_on_b() == 404
            async with http.post(a.url + "/api/v1/plugins/example/enable") as response:
                assert response.status == 200, await response.text()
            toggled = time.monotonic()

            async def applied_on_b() -> bool:
                return await hello_on_b() == 200

            await wait_for(applied_on_b, PROPAGATION)
            assert time.monotonic() - toggled < PROPAGATION

        # ...and every page, on either process, is told.
        async def told(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
            while True:
                message = await ws.receive_json(timeout=PROPAGATION)
                if message.get("topic") == "plugins":
                    return dict(message["data"])

        events = await asyncio.gather(*(told(ws) for ws in sockets))
        seen = {(e["name"], e["enabled"], e["status"]) for e in events}
        assert seen == {("example", True, "active")}, events
    finally:
        for ws in sockets:
            await ws.close()


async def active_on_both(topology: Topology, http: aiohttp.ClientSession, plugin: str) -> None:
    """Wait until each portal process, asked directly, has ``plugin`` active."""
    cookie = http.cookie_jar.filter_cookies(URL(topology.url))[SESSION_COOKIE].value
    async with aiohttp.ClientSession(headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}) as direct:

        async def active() -> bool:
            for server in topology.apps:
                async with direct.get(f"{server.url}/api/v1/plugins/{plugin}") as response:
                    assert response.status == 200, await response.text()
                    if (await response.json())["status"] != "active":
                        return False
            return True

        await wait_for(active, PROPAGATION)


async def a_download_runs_once_on_the_worker(
    topology: Topology, http: aiohttp.ClientSession, clip: bytes
) -> None:
    url = topology.url
    settings = {
        "library_path": str(topology.library),
        "allow_any_host_for_tests": True,
        "downloads_per_hour": 100,
        "concurrent_per_user": 10,
    }
    async with http.put(url + "/api/v1/plugins/youtube/settings", json=settings) as response:
        assert response.status == 200, await response.text()
    async with http.post(url + "/api/v1/plugins/youtube/enable") as response:
        assert response.status == 200, await response.text()
    # The process nginx sent the toggle to applied it before answering; the other applies it
    # when the bus tells it (within PROPAGATION), and nginx may send the next call there.
    await active_on_both(topology, http, "youtube")

    async def rows() -> list[dict[str, Any]]:
        async with http.get(url + DOWNLOADS) as response:
            assert response.status == 200, await response.text()
            return list((await response.json())["downloads"])

    # Sent slowly enough that yt-dlp's first look (which it cuts short) is not a full transfer.
    async with VideoSite(files={"clip.mp4": clip}, bytes_per_second=len(clip) // 2) as site:
        rid = request_id("download")
        async with http.post(
            url + DOWNLOADS,
            json={"url": f"{site.url}/media/clip.mp4"},
            headers={"X-Request-ID": rid},
        ) as response:
            assert response.status == 200, await response.text()
            download = (await response.json())["id"]

        async def finished() -> bool:
            return any(r["status"] in ("completed", "failed") for r in await rows())

        await wait_for(finished, 30)
        # Time for a second run, were there one (another process taking the job too).
        await asyncio.sleep(1.5)
        completed = dict(site.completed)

    await logged(topology.apps, {rid})
    submitted_on = [s.name for s in topology.apps if rid in answered_ids(s, "POST", DOWNLOADS, 200)]
    assert len(submitted_on) == 1, submitted_on
    assert [(r["id"], r["status"], r["attempts"]) for r in await rows()] == [
        (download, "completed", 1)
    ]
    assert completed == {"clip.mp4": 1}
    files = [p for p in topology.library.rglob("*.mp4") if ".incoming" not in p.parts]
    assert [p.name for p in files] == ["clip.mp4"]
    assert files[0].read_bytes()[4:8] == b"ftyp"  # an MP4 file (remuxed, so not the same bytes)
    # The worker ran it, once; the portal processes only queued it.
    assert topology.worker_log.read_text(errors="replace").count("Processing Job") == 1
    for app in topology.apps:
        assert "Processing" not in app.output()


def unread_requests(port: int) -> int:
    """Connections to ``port`` on 127.0.0.1 whose bytes its process has not read yet (from
    /proc/net/tcp: an established socket with a receive queue)."""
    local = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        state, queues = fields[3], fields[4]
        if fields[1] == local and state == "01" and int(queues.split(":")[1], 16) > 0:
            count += 1
    return count


async def a_process_killed_mid_load_loses_no_answered_request(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    # What nginx does with a POST when a process dies (proxy_next_upstream, without
    # non_idempotent): one the dead process refused goes to the other; one it had already
    # received is answered 502 and never sent again, so that no write can be made twice.
    a, b = topology.apps
    url = topology.url
    total, clients, kill_after = 240, 16, 60
    outcomes: dict[str, int | str] = {}
    started_at: dict[str, float] = {}
    dead_at: list[float] = []
    numbers = iter(range(total))

    async def held_by_a() -> bool:
        return unread_requests(a.port) > 0

    async def client() -> None:
        for number in numbers:
            name = f"load-{number:03d}-{uuid.uuid4().hex[:8]}"
            started_at[name] = time.monotonic()
            try:
                async with http.post(
                    url + TOKENS, json={"name": name}, headers={"X-Request-ID": name}
                ) as response:
                    await response.read()
                    outcomes[name] = response.status
            except aiohttp.ClientError as exc:
                outcomes[name] = f"{type(exc).__name__}: {exc}"
            if len(outcomes) == kill_after:
                # A is stopped first, then killed once nginx has handed it a request it has not
                # read: it dies holding requests, as a process that crashes under load does
                # (killed at once, it might by chance hold none).
                a.process.send_signal(signal.SIGSTOP)
                await wait_for(held_by_a, 10)
                a.process.send_signal(signal.SIGKILL)
                # Blocking the loop for these few milliseconds: nothing starts while A dies.
                a.process.wait(timeout=5)
                dead_at.append(time.monotonic())

    await asyncio.gather(*(client() for _ in range(clients)))

    async with http.get(url + TOKENS) as response:
        assert response.status == 200, await response.text()
        listed = Counter(t["name"] for t in (await response.json())["tokens"])

    created = {n for n, s in outcomes.items() if isinstance(s, int) and 200 <= s < 300}
    failed = {n: s for n, s in outcomes.items() if n not in created}
    # A took part before it died, and B carried the load on after.
    assert answered_ids(a, "POST", TOKENS, 201) & created
    assert any(started_at[n] > dead_at[0] for n in created)
    # Every creation answered 2xx is there, and none was made twice.
    assert created <= set(listed), sorted(created - set(listed))
    assert max(listed.values()) == 1, [n for n, c in listed.items() if c > 1]
    # The others failed visibly, answered 502 by nginx: requests A held when it died. (Some
    # may have been created, A dying between its write and its answer: the client cannot
    # tell, as with any answer lost, and knows to look.) None sent once A was gone failed.
    assert failed, "A died holding no request: nothing tested what nginx does with those"
    assert set(failed.values()) <= {502}, failed
    assert all(started_at[n] < dead_at[0] for n in failed), failed

    nginx_saw = {
        e["request_id"]: e
        for e in topology.nginx.upstream_log()
        if e["uri"] == TOKENS and e["method"] == "POST"
    }
    a_address, b_address = f"127.0.0.1:{a.port}", f"127.0.0.2:{b.port}"
    for name in failed:
        assert nginx_saw[name]["upstream_addr"] == [a_address], nginx_saw[name]
    # Requests A refused once dead went on to B, and were created there once.
    passed_on = [e for e in nginx_saw.values() if len(e["upstream_addr"]) > 1]
    assert passed_on, "no request was refused by A and passed on to B"
    for entry in passed_on:
        assert entry["upstream_addr"] == [a_address, b_address], entry
        assert entry["upstream_status"] == ["502", "201"], entry
        assert listed[entry["request_id"]] == 1, entry
