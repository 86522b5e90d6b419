"""``medianest demo``: one command gives a populated portal on fake services, and Ctrl-C ends it.

The demo runs as a real process, as a newcomer starts it; the tests read its banner for the
passwords, sign in through the API, and check what a newcomer would see.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from conftest import free_port
from servers import _command, sign_in

BUILT_IN = ("plex", "arr", "tautulli", "tmdb", "youtube")
STARTUP_TIMEOUT = 30.0


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def field(self, pattern: str) -> str:
        match = re.search(pattern, self.output(), flags=re.MULTILINE)
        assert match, f"{pattern!r} not in the demo's output:\n{self.output()}"
        return match.group(1)

    @property
    def admin_password(self) -> str:
        return self.field(r"^\s+admin\s+password: (\S+)")

    @property
    def friend_password(self) -> str:
        return self.field(r"^\s+friend\s+password: (\S+)")

    @property
    def data_dir(self) -> Path:
        return Path(self.field(r"^Data: (.+) \(removed when the demo stops\)"))

    def wait_ready(self) -> None:
        """Block until the banner is out (it is printed once the portal listens)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "Press Ctrl-C to stop." not in self.output():
            assert self.process.poll() is None, (
                f"medianest demo exited with {self.process.returncode}:\n{self.output()}"
            )
            assert time.monotonic() < deadline, f"no banner within {STARTUP_TIMEOUT:g} s"
            time.sleep(0.05)

    def interrupt(self) -> int:
        """Ctrl-C, as a person at the terminal stops it; the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_demo(directory: Path, *args: str, **env: str) -> Demo:
    """``medianest demo --port <free> [args]`` with temporary folders under ``directory``."""
    tmp = directory / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    environment |= {"TMPDIR": str(tmp), **env}
    port = free_port()
    log_path = directory / f"demo-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*_command(), "demo", "--port", str(port), *args],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Demo(process, log_path, port)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            try:
                running.interrupt()
            except subprocess.TimeoutExpired:
                running.kill()
        print("----- output of medianest demo -----")
        print(running.output())


def session() -> aiohttp.ClientSession:
    # Keeps the cookies of numeric hosts such as 127.0.0.1.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def plugins_of(http: aiohttp.ClientSession, url: str) -> dict[str, dict]:
    async with http.get(url + "/api/v1/plugins") as response:
        assert response.status == 200, await response.text()
        return {p["name"]: p for p in (await response.json())["plugins"]}


def assert_loopback(url: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port, url
    return url.rstrip("/")


def folder_within(path: str, parent: Path) -> bool:
    return Path(path).is_dir() and Path(path).is_relative_to(parent)


async def test_admin_finds_every_integration_enabled_on_fakes_that_answer(demo: Demo) -> None:
    async with session() as http:
        await sign_in(http, demo.url, "admin", demo.admin_password)
        async with http.get(demo.url + "/api/v1/auth/me") as response:
            assert (await response.json())["role"] == "admin"
        plugins = await plugins_of(http, demo.url)
        for name in BUILT_IN:
            assert plugins[name]["enabled"], name
            assert plugins[name]["status"] == "active", plugins[name]
            assert plugins[name]["error"] is None, plugins[name]

        for name in ("plex", "arr", "tautulli"):
            async with http.get(f"{demo.url}/api/v1/plugins/{name}/health") as response:
                assert response.status == 200, await response.text()
                checks = (await response.json())["checks"]
            assert checks and all(c["status"] == "ok" for c in checks), (name, checks)

        # Each address is a loopback fake of the right service: its own answers say so.
        plex, arr = plugins["plex"]["settings"], plugins["arr"]["settings"]
        tautulli, tmdb = plugins["tautulli"]["settings"], plugins["tmdb"]["settings"]
        youtube = plugins["youtube"]["settings"]
        instances = [*arr["sonarr"], *arr["radarr"]]
        assert len(instances) == 2, arr
        keys = [plex["token"], tautulli["api_key"], tmdb["api_key"], youtube["api_key"]]
        assert all(keys + [i["api_key"] for i in instances]), "every key is set"
        async with http.get(assert_loopback(plex["url"]) + "/identity") as response:
            assert response.status == 200
            assert "machineIdentifier=" in await response.text()
        async with http.get(assert_loopback(plex["plex_tv_url"]) + "/api/v2/user") as response:
            assert response.status == 401
            assert (await response.json())["errors"][0]["code"] == 1001
        for instance in instances:
            status_url = assert_loopback(instance["url"]) + "/api/v3/system/status"
            async with http.get(status_url) as response:
                assert response.status == 401, instance
                assert await response.json() == {"error": "Unauthorized"}
        async with http.get(assert_loopback(tautulli["url"]) + "/api/v2") as response:
            assert response.status == 401
            assert (await response.json())["response"]["message"] == "Parameter apikey is required"
        async with http.get(assert_loopback(tmdb["api_url"]) + "/3/configuration") as response:
            assert response.status == 401
            assert (await response.json())["status_code"] == 7
        async with http.get(assert_loopback(youtube["api_url"]) + "/youtube/v3/videos") as response:
            assert response.status == 403
            assert "error" in await response.json()
        # Downloads land in the demo's own folder, which exists.
        assert folder_within(youtube["library_path"], demo.data_dir)

        # The dashboard shows every widget of the five, none of them unavailable.
        async with http.get(demo.url + "/api/v1/dashboard") as response:
            assert response.status == 200
            loaded = {(w["plugin"], w["name"]): w for w in (await response.json())["widgets"]}
        async with http.get(demo.url + "/") as response:
            assert response.status == 200
            page = await response.text()
        for name in BUILT_IN:
            assert plugins[name]["widgets"], f"{name} has no widget"
            for widget in plugins[name]["widgets"]:
                assert loaded[name, widget]["error"] is None, loaded[name, widget]
                match = re.search(
                    rf'<section class="widget[^"]*" id="widget-{name}-{widget}".*?</section>',
                    page,
                    flags=re.DOTALL,
                )
                assert match, f"the dashboard has no {name}:{widget} widget"
                assert "widget-unavailable" not in match.group(0), match.group(0)
                assert "not configured yet" not in match.group(0), match.group(0)


async def test_friend_signs_in_as_a_user_and_plex_sign_in_works(demo: Demo) -> None:
    async with session() as http:
        await sign_in(http, demo.url, "friend", demo.friend_password)
        async with http.get(demo.url + "/api/v1/auth/me") as response:
            me = await response.json()
        assert (me["username"], me["role"]) == ("friend", "user")
        async with http.get(demo.url + "/api/v1/plugins") as response:
            assert response.status == 403
        async with http.get(demo.url + "/") as response:
            assert response.status == 200
            assert 'id="widget-plex-' in await response.text()

    # The shared friend of the banner signs in with Plex, approving on the fake plex.tv page.
    plex_friend = demo.field(r'^\s+or "([^"]+)" \(it is shared with her\)')
    async with session() as http:
        async with http.get(demo.url + "/auth/plex/start", allow_redirects=False) as response:
            assert response.status == 303, await response.text()
            location = response.headers["Location"]
        app_page = location.split("#", 1)[0]
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment.lstrip("?")).items()}
        assert_loopback(app_page)
        async with http.get(app_page) as response:
            accounts = dict(
                (name, account_id)
                for account_id, name in re.findall(
                    r'data-account="(\d+)">Approve as ([^<]+)<', await response.text()
                )
            )
        assert plex_friend in accounts and len(accounts) == 2, accounts
        approve = app_page.rsplit("/auth", 1)[0] + "/auth/approve"
        form = {"code": params["code"], "account": accounts[plex_friend]}
        async with http.post(approve, data=form) as response:
            assert response.status == 200
        async with http.get(params["forwardUrl"]) as response:
            assert response.status == 200
            assert str(response.url) == demo.url + "/"
        async with http.get(demo.url + "/api/v1/auth/me") as response:
            assert response.status == 200
            me = await response.json()
        assert (me["username"], me["role"]) == (plex_friend, "user")


def port_closed(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((parts.hostname or "", parts.port or 0)) != 0


async def test_ctrl_c_stops_everything_and_removes_the_temporary_folder(tmp_path: Path) -> None:
    # An installation's own configuration is there, and the demo must leave it alone.
    real = tmp_path / "real-installation"
    running = start_demo(
        tmp_path,
        MEDIANEST_DATA_DIR=str(real),
        MEDIANEST_DATABASE_URL="postgresql://127.0.0.1:1/medianest",
        MEDIANEST_REDIS_URL="redis://127.0.0.1:1/0",
        MEDIANEST_CONFIG=str(tmp_path / "medianest.toml"),
    )
    try:
        running.wait_ready()
        folder = running.data_dir
        assert folder.is_dir() and folder.is_relative_to(tmp_path / "tmp")
        assert (folder / "medianest.db").is_file()
        async with session() as http:
            await sign_in(http, running.url, "admin", running.admin_password)
            plugins = await plugins_of(http, running.url)
        fakes = [
            plugins["plex"]["settings"]["url"],
            plugins["plex"]["settings"]["plex_tv_url"],
            plugins["arr"]["settings"]["sonarr"][0]["url"],
            plugins["arr"]["settings"]["radarr"][0]["url"],
            plugins["tautulli"]["settings"]["url"],
            plugins["tmdb"]["settings"]["api_url"],
            plugins["youtube"]["settings"]["api_url"],
        ]
        assert not any(port_closed(url) for url in fakes)

        assert running.interrupt() == 0, running.output()
    finally:
        running.kill()
        print(running.output())
    output = running.output()
    assert "Traceback" not in output, output
    assert not folder.exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not real.exists()
    assert port_closed(running.url)
    assert all(port_closed(url) for url in fakes)


async def test_a_kept_data_dir_is_reused_with_new_passwords(tmp_path: Path) -> None:
    folder = tmp_path / "kept"
    first = start_demo(tmp_path, "--data-dir", str(folder))
    try:
        first.wait_ready()
        assert "(kept)" in first.output()
        old_password = first.admin_password
        assert first.interrupt() == 0, first.output()
    finally:
        first.kill()
    assert (folder / "medianest.db").is_file()

    second = start_demo(tmp_path, "--data-dir", str(folder))
    try:
        second.wait_ready()
        assert second.admin_password != old_password
        async with session() as http:
            credentials = {"username": "admin", "password": old_password}
            async with http.post(second.url + "/api/v1/auth/login", json=credentials) as response:
                assert response.status == 401
            await sign_in(http, second.url, "admin", second.admin_password)
            plugins = await plugins_of(http, second.url)
        assert all(plugins[name]["status"] == "active" for name in BUILT_IN)
        assert second.interrupt() == 0, second.output()
    finally:
        second.kill()
        print(second.output())
    # The integrations did not start on the last run's fakes, which are gone.
    assert "unreachable" not in second.output()
    assert "Traceback" not in second.output()
    assert (folder / "medianest.db").is_file()


def test_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    installation = tmp_path / "data"
    installation.mkdir()
    (installation / "medianest.db").write_bytes(b"someone's real data")
    result = subprocess.run(
        [*_command(), "demo", "--port", str(free_port()), "--data-dir", str(installation)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("medianest: ") and "not empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert [p.name for p in installation.iterdir()] == ["medianest.db"]
    assert (installation / "medianest.db").read_bytes() == b"someone's real data"


async def status_once_handed_on(client: aiohttp.ClientSession, demo: Demo, request_id: str) -> str:
    """The request's status once the fulfilment has taken it (within 10 s)."""
    for _ in range(100):
        async with client.get(f"{demo.url}/api/v1/requests/{request_id}") as response:
            status = str((await response.json())["status"])
        if status != "approved":
            break
        await asyncio.sleep(0.1)
    return status


async def test_a_request_in_the_demo_goes_to_radarr(demo: Demo) -> None:
    async with session() as friend, session() as admin:
        await sign_in(friend, demo.url, "friend", demo.friend_password)
        await sign_in(admin, demo.url, "admin", demo.admin_password)
        body = {"media_type": "movie", "tmdb_id": 604}  # The Matrix Reloaded: not in Plex
        async with friend.post(demo.url + "/api/v1/requests", json=body) as response:
            assert response.status == 201, await response.text()
            request_id = (await response.json())["request"]["id"]
        async with admin.post(f"{demo.url}/api/v1/requests/{request_id}/approve", json={}) as r:
            assert r.status == 200, await r.text()
        assert await status_once_handed_on(friend, demo, request_id) == "processing"


async def test_whatever_the_demo_finds_can_be_requested(demo: Demo) -> None:
    # Plex, Radarr, Sonarr and TMDB know the same films and series in the demo: one that only
    # Radarr's or Sonarr's catalogue had, one only TMDB had and one only Plex held are each
    # found and answered for.
    async with session() as admin:
        await sign_in(admin, demo.url, "admin", demo.admin_password)
        made = []
        for body in (
            {"media_type": "movie", "tmdb_id": 438631},  # Dune (2021): Radarr's
            {"media_type": "movie", "tmdb_id": 1290001},  # Starfall Protocol: TMDB's
            {"media_type": "tv", "tmdb_id": 87108, "seasons": [1]},  # Chernobyl: Sonarr's
            {"media_type": "tv", "tmdb_id": 100088, "seasons": [1]},  # The Last of Us: TMDB's
        ):
            async with admin.post(demo.url + "/api/v1/requests", json=body) as response:
                assert response.status == 201, await response.text()
                made.append((await response.json())["request"]["id"])
        for request_id in made:
            assert await status_once_handed_on(admin, demo, request_id) == "processing"
        for body in (
            {"media_type": "movie", "tmdb_id": 329865},  # Arrival, in Plex
            {"media_type": "tv", "tmdb_id": 2316, "seasons": [1]},  # The Office, in Plex
        ):
            async with admin.post(demo.url + "/api/v1/requests", json=body) as response:
                assert response.status == 409, await response.text()
                assert "already available" in (await response.json())["error"]["message"]
