"""The deployment's topology from real processes on this machine: nginx with the deployment's
own configuration in front of ``medianest serve`` processes, found as Docker's DNS finds them.

:class:`FakeDockerDns` answers ``medianest-app`` with one address per process;
:func:`start_portal_at` starts a process at one of those addresses (127.0.0.x, all on the same
port, as replicas are); :class:`RunningNginx` runs the real nginx on
``deploy/nginx/medianest.conf``, optionally logging which process answered each request.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from conftest import free_port, require
from servers import Server, Servers

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "medianest.conf"

# One JSON object a line: the request id the client sent, and each process nginx tried for the
# request with what it got from it ("502" for one that could not be reached).
_UPSTREAM_LOG_FORMAT = (
    "log_format medianest_upstreams escape=json "
    '\'{"request_id":"$http_x_request_id","method":"$request_method","uri":"$uri",'
    '"status":"$status","upstream_addr":"$upstream_addr",'
    '"upstream_status":"$upstream_status"}\';'
)


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    require(path, f"{name} is not installed (apt-get install {package})")
    assert path is not None
    return path


def nginx_wrapper(
    directory: Path, server_config: str, *, run: bool = False, upstream_log: bool = False
) -> Path:
    """An nginx.conf as the nginx image's: our file included in the http block; everything
    nginx writes kept in ``directory``. ``run``: one process, in the foreground, as this user.
    ``upstream_log``: access.log says which processes each request went to."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "medianest.conf").write_text(server_config)
    temp = "\n".join(
        f"  {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    access = (
        f"  {_UPSTREAM_LOG_FORMAT}\n  access_log {directory / 'access.log'} medianest_upstreams;"
        if upstream_log
        else "  access_log off;"
    )
    main = "daemon off;\nmaster_process off;\n" if run else ""
    conf = directory / "nginx.conf"
    conf.write_text(
        f"{main}pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} info;\n"
        f"events {{}}\nhttp {{\n{access}\n{temp}\n"
        f"  include {directory / 'medianest.conf'};\n}}\n"
    )
    return conf


def nginx_command(conf: Path) -> list[str]:
    nginx = tool("nginx", "nginx")
    return [nginx, "-p", str(conf.parent), "-e", str(conf.parent / "error.log"), "-c", str(conf)]


class FakeDockerDns:
    """Docker's embedded DNS in miniature: answers A queries for the names in ``records``
    with all their addresses (and "no such name" for any other)."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                query, client = self._socket.recvfrom(512)
            except TimeoutError:
                continue
            self._socket.sendto(self._answer(query), client)

    def _answer(self, query: bytes) -> bytes:
        ident = struct.unpack("!H", query[:2])[0]
        labels, pos = [], 12
        while query[pos]:
            labels.append(query[pos + 1 : pos + 1 + query[pos]].decode())
            pos += 1 + query[pos]
        qtype = struct.unpack("!H", query[pos + 1 : pos + 3])[0]
        question = query[12 : pos + 5]
        name = ".".join(labels).lower()
        found = name in self.records
        addresses = self.records[name] if found and qtype == 1 else []
        # A response to a recursive query (RD, RA), NXDOMAIN for names it does not know.
        header = struct.pack("!6H", ident, 0x8180 | (0 if found else 3), 1, len(addresses), 0, 0)
        answers = b"".join(
            struct.pack("!3HIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(address)
            for address in addresses
        )
        return header + question + answers

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._socket.close()


class RunningNginx:
    """nginx with our configuration, listening on loopback, sending to the portal on ``port``:
    at 127.0.0.1, or at the addresses ``dns`` gives for medianest-app, as Docker's DNS would."""

    def __init__(
        self,
        directory: Path,
        config: str,
        port: int,
        dns: FakeDockerDns | None = None,
        *,
        upstream_log: bool = False,
    ) -> None:
        self.directory = directory
        self.http_port = free_port()
        self.https_port = free_port()
        if dns is None:
            config = config.replace(
                "set $medianest_app medianest-app;", "set $medianest_app 127.0.0.1;"
            )
        else:
            config = config.replace("resolver 127.0.0.11 ", f"resolver 127.0.0.1:{dns.port} ")
        config = config.replace(":8080;", f":{port};")
        config = config.replace("listen 80 ", f"listen 127.0.0.1:{self.http_port} ")
        config = config.replace("listen 443 ", f"listen 127.0.0.1:{self.https_port} ")
        self.conf = nginx_wrapper(directory, config, run=True, upstream_log=upstream_log)
        self.process = subprocess.Popen(
            nginx_command(self.conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not (directory / "nginx.pid").exists():
            assert self.process.poll() is None, (directory / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def upstream_log(self) -> list[dict[str, Any]]:
        """The requests nginx answered (with ``upstream_log=True``), oldest first; for each,
        ``upstream_addr`` and ``upstream_status`` list every process tried, in order."""
        path = self.directory / "access.log"
        if not path.exists():
            return []
        entries = [json.loads(line) for line in path.read_text().splitlines() if line]
        for entry in entries:
            for key in ("upstream_addr", "upstream_status"):
                entry[key] = [part.strip() for part in entry[key].split(",") if part.strip()]
        return entries

    def errors(self) -> str:
        return (self.directory / "error.log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_portal_at(servers: Servers, name: str, host: str, port: int, **settings: str) -> Server:
    """``medianest serve`` on ``host:port`` (``Servers.start`` picks 127.0.0.1 and a port),
    trusting the nginx in front of it; ``settings`` become ``MEDIANEST_*`` variables. Returns
    once the port accepts connections."""
    script = Path(sys.executable).with_name("medianest")
    env = servers.environment(name, host=host, trusted_proxies="127.0.0.1", **settings)
    log_path = servers.directory / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(script), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Server(name, port, process, log_path, env, host)
    servers.started.append(server)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, server.output()
        try:
            with socket.create_connection((host, port), timeout=1):
                return server
        except OSError:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)


def session(*, auto_decompress: bool = False) -> aiohttp.ClientSession:
    """A client that keeps cookies of numeric hosts (as a browser keeps those of any host);
    it sees responses as sent (compressed or not) unless ``auto_decompress``."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        auto_decompress=auto_decompress,
    )
