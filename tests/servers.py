"""Real ``medianest serve`` processes for the tests that need a server of their own.

Each server logs to a file; the fixtures that use :class:`Servers` print every server's output
at teardown, which pytest shows under a failed test (and hides when it passes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from conftest import free_port

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
        env["MEDIANEST_DATA_DIR"] = str(self.directory / name)
        env.update({f"MEDIANEST_{key.upper()}": value for key, value in settings.items()})
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
        server = Server(name, port, process, log_path)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()
        for server in self.started:
            print(f"----- output of medianest serve ({server.name}, port {server.port}) -----")
            print(server.output())
