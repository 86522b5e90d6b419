"""Real ``medianest serve`` processes for the tests that need a server of their own.

Each server logs to a file; the fixtures that use :class:`Servers` print every server's output
at teardown, which pytest shows under a failed test (and hides when it passes).

A server answers only signed-in users: :func:`create_admin` makes the administrator an operator
would make with ``medianest create-admin``, and :class:`Api` (blocking) or :func:`sign_in`
(aiohttp) sign in through the API as a script would.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from conftest import ADMIN, free_port

STARTUP_TIMEOUT = 30.0


def _command() -> list[str]:
    script = Path(sys.executable).with_name("medianest")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "medianest"]


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until ``/healthz`` answers; fail with the server's output if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"medianest serve ({self.name}) exited with {self.process.returncode}:\n"
                    + self.output()
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"medianest serve ({self.name}) did not answer within {timeout:g} s:\n" + self.output()
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Servers:
    """Starts servers and guarantees they are all stopped, whatever happens to the test."""

    directory: Path
    started: list[Server] = field(default_factory=list)

    def start(self, name: str, **settings: str) -> Server:
        """Start ``medianest serve`` on a free port; ``settings`` become ``MEDIANEST_*`` variables.

        Does not wait: call :meth:`Server.wait_ready`.
        """
        env = self.environment(name, **settings)
        port = free_port()
        log_path = self.directory / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*_command(), "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(name, port, process, log_path, env)
        self.started.append(server)
        return server

    def environment(self, name: str, **settings: str) -> dict[str, str]:
        """The environment of the server ``name``: its data folder and ``MEDIANEST_*`` settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
        env["MEDIANEST_DATA_DIR"] = str(self.directory / name)
        env.update({f"MEDIANEST_{key.upper()}": value for key, value in settings.items()})
        return env

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()
        for server in self.started:
            print(f"----- output of medianest serve ({server.name}, port {server.port}) -----")
            print(server.output())


def create_admin(env: dict[str, str], username: str = ADMIN[0], password: str = ADMIN[1]) -> None:
    """``medianest create-admin --password-stdin`` with ``env``, as an operator runs it."""
    result = subprocess.run(
        [*_command(), "create-admin", "--username", username, "--password-stdin"],
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def sign_in(
    session: aiohttp.ClientSession, url: str, username: str = ADMIN[0], password: str = ADMIN[1]
) -> None:
    """Sign ``session`` in on the server at ``url``; it then sends its CSRF token with each
    request. The session needs a cookie jar that keeps cookies of numeric hosts
    (``aiohttp.CookieJar(unsafe=True)``)."""
    credentials = {"username": username, "password": password}
    async with session.post(url + "/api/v1/auth/login", json=credentials) as response:
        assert response.status == 200, await response.text()
    async with session.get(url + "/api/v1/auth/me") as response:
        assert response.status == 200, await response.text()
        me = await response.json()
    session.headers["X-CSRF-Token"] = me["csrf_token"]


class Api:
    """A blocking client of a server's JSON API, signed in with a local account."""

    def __init__(self, url: str, username: str = ADMIN[0], password: str = ADMIN[1]) -> None:
        self.url = url
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self._csrf: str | None = None
        self.post("/api/v1/auth/login", {"username": username, "password": password})
        self._csrf = self.get("/api/v1/auth/me")["csrf_token"]

    def _send(self, request: urllib.request.Request) -> Any:
        if self._csrf is not None:
            request.add_header("X-CSRF-Token", self._csrf)
        with self._opener.open(request, timeout=10) as response:
            return json.loads(response.read())

    def get(self, path: str) -> Any:
        return self._send(urllib.request.Request(self.url + path))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send(
            urllib.request.Request(
                self.url + path,
                data=json.dumps(body or {}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
        )
