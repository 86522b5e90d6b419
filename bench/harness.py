"""``python -m bench``: MediaNest under load, each figure a ratio to a bare aiohttp handler.

One run starts the fake upstream services of :mod:`medianest.testing` in this process (as
``medianest demo`` does), seeds a database (10,000 requests across 200 users), starts
``medianest serve`` on it and a bare aiohttp "hello" server (``bench.baseline``) on the same
Python and event loop, then drives every scenario with wrk (a load generator that is not
Python-bound) and prints a table, writes JSON and, for full runs, updates ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from medianest import demo
from medianest.app import create_app
from medianest.core import db
from medianest.core.keys import ENGINE, REGISTRY
from medianest.core.settings import Settings
from medianest.requests.workflow import media_t, requests_t, seasons_t, users_t
from medianest.testing.tmdb import Movie

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPBACK = "127.0.0.1"
ADMIN = ("bench-admin", "bench-password-1")
USERS, REQUESTS = 200, 10_000
# The bench's own films on the fake TMDB, requested by the creation scenario (one id each).
FIRST_NEW_ID = 9_000_000
# Processes reading the fan-out's websockets: one Python process reading 10,000 sockets takes
# longer to read them than the server takes to write them.
WS_CLIENT_PROCESSES = 4
# Seeded requests use TMDB ids from here (clear of the fake's own catalogue).
FIRST_SEEDED_ID = 5_000_000
LIST_QUERY = "/api/v1/requests?scope=all&status=pending,approved,available&type=movie&per_page=20"
# A share of the requests in each state, roughly what a community's history holds.
STATUS_MIX = {
    "available": 50,
    "pending": 15,
    "approved": 10,
    "declined": 10,
    "failed": 7,
    "processing": 5,
    "partially_available": 3,
}
READY_WITHIN = 60.0
MARK_START, MARK_END = "<!-- bench:latest -->", "<!-- /bench:latest -->"


class BenchError(Exception):
    """The benchmark cannot run; the message says why."""


@dataclass
class Scenario:
    """One line of the table."""

    name: str
    what: str
    target: str
    requests_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    ratio: float | None = None
    rss_mb: float | None = None
    cpu_ms: float | None = None
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "target": self.target,
            "requests_per_s": self.requests_per_s,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
            "ratio": self.ratio,
            "rss_mb": self.rss_mb,
            "cpu_ms_per_request": self.cpu_ms,
            "met": self.met,
            "extra": self.extra,
        }


@dataclass
class Options:
    quick: bool
    duration: float
    viewers_duration: float
    connections: int
    subscribers: int
    scenarios: list[str]
    json_path: Path
    results_path: Path | None
    postgres_url: str | None
    profile_dir: Path | None = None
    # The README's copy of the latest table (replaced by complete full runs only).
    readme_path: Path | None = None


ALL_SCENARIOS = [
    "dashboard-json",
    "dashboard-html",
    "request-list",
    "request-create",
    "viewers",
    "upstream-hung",
    "ws-fanout",
]


# --- wrk ------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of wrk, installing Debian's package when this user may; else a clear error."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
        found = shutil.which("wrk")
        if found:
            return found
    raise BenchError(
        "wrk is not installed and could not be installed here: run `apt-get install wrk` "
        "(Debian's package) as root, then run the benchmark again"
    )


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    raw: dict[str, Any]
    # CPU time of the server per answer: steadier than throughput on a busy machine.
    cpu_ms: float | None = None


async def run_wrk(
    wrk: str,
    url: str,
    script: str,
    duration: float,
    connections: int,
    env: dict[str, str] | None = None,
) -> WrkResult:
    args = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "wrk" / script),
        url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ | (env or {}),
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed on {url}:\n{text}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "timeout"))
    # wrk's own "status" errors are the answers >= 400; the creation script counts non-2xx.
    errors += raw.get("not_2xx", raw["status"])
    return WrkResult(
        requests_per_s=raw["requests"] / seconds if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
        raw=raw,
    )


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no resident size for process {pid}")


async def wait_ready(url: str, proc: asyncio.subprocess.Process) -> float:
    """Seconds until ``url`` answers 200; fails if the process ends first."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < READY_WITHIN:
            if proc.returncode is not None:
                raise BenchError(f"the process serving {url} ended with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            await asyncio.sleep(0.01)
    raise BenchError(f"{url} did not answer within {READY_WITHIN:.0f} s")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- the instance under test ----------------------------------------------------------------


def bench_settings(data_dir: Path, port: int, database_url: str | None) -> dict[str, str]:
    """The ``MEDIANEST_*`` settings of the served instance: the embedded default, except a
    rate limit of API calls that a load generator does not trip over."""
    values = {
        "data_dir": str(data_dir),
        "host": LOOPBACK,
        "port": str(port),
        "rate_limit_api": "100000000/minute",
        "log_level": "warning",
    }
    if database_url:
        values["database_url"] = database_url
    return values


def settings_from(values: dict[str, str]) -> Settings:
    defaults: dict[str, Any] = {
        name: f.get_default(call_default_factory=True) for name, f in Settings.model_fields.items()
    }
    defaults["database_url"] = ""
    return Settings(**(defaults | values))


def bench_movies(count: int) -> dict[int, Movie]:
    """Films the fake TMDB knows besides its own, for requests that are all new."""
    return {
        tmdb_id: Movie(
            tmdb_id,
            f"Benchmark Film {tmdb_id}",
            "2020-01-01",
            f"tt{tmdb_id}",
            "A film that exists for the benchmark.",
            [18],
            100,
            "/bench.jpg",
            "/bench-backdrop.jpg",
            1.0,
            6.0,
            10,
        )
        # One more before the first: the film the fan-out scenario requests.
        for tmdb_id in range(FIRST_NEW_ID - 1, FIRST_NEW_ID + count)
    }


async def seed(engine: AsyncEngine, users: int = USERS, count: int = REQUESTS) -> None:
    """``count`` requests across ``users`` users, written with bulk inserts."""
    rng = random.Random(9)
    now = datetime.now(UTC)
    user_rows = [
        {
            "id": uuid.uuid4(),
            "username": f"member{n:03d}",
            "email": f"member{n:03d}@example.com",
            "role": "user",
            "permissions": ["request_movies", "request_tv"],
            "created_at": now - timedelta(days=400),
            "updated_at": now - timedelta(days=400),
        }
        for n in range(users)
    ]
    media_rows, request_rows, season_rows = [], [], []
    statuses = list(STATUS_MIX)
    weights = list(STATUS_MIX.values())
    for n in range(count):
        media_type = "tv" if n % 5 == 0 else "movie"
        media_id, request_id = uuid.uuid4(), uuid.uuid4()
        made = now - timedelta(seconds=rng.randrange(365 * 86400))
        media_rows.append(
            {
                "id": media_id,
                "title": f"Seeded {'Series' if media_type == 'tv' else 'Film'} {n}",
                "type": media_type,
                "tmdb_id": FIRST_SEEDED_ID + n,
                "imdb_id": f"tt{FIRST_SEEDED_ID + n}",
                "metadata": {"year": 2000 + n % 25, "poster_path": "/seeded.jpg"},
                "created_at": made,
                "updated_at": made,
            }
        )
        request_rows.append(
            {
                "id": request_id,
                "user_id": user_rows[rng.randrange(users)]["id"],
                "media_id": media_id,
                "type": media_type,
                "status": rng.choices(statuses, weights)[0],
                "is_4k": False,
                "details": {},
                "attempts": 0,
                "created_at": made,
                "updated_at": made,
            }
        )
        if media_type == "tv":
            season_rows.append({"request_id": request_id, "season": 1})
    async with engine.begin() as conn:
        await conn.execute(insert(users_t), user_rows)
        await conn.execute(insert(media_t), media_rows)
        await conn.execute(insert(requests_t), request_rows)
        await conn.execute(insert(seasons_t), season_rows)


async def prepare(values: dict[str, str], fakes: demo.Fakes, library: Path) -> None:
    """Migrate and seed the database, make the admin, and turn the integrations on with the
    fakes, as ``medianest demo`` does; nothing listens yet."""
    settings = settings_from(values)
    engine = db.create_engine(settings)
    try:
        await db.migrate(engine)
        await seed(engine)
    finally:
        await engine.dispose()
    app = await create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await demo.ensure_local_account(app[ENGINE], ADMIN[0], ADMIN[1], "admin")
        registry = app[REGISTRY]
        for name, plugin_values in demo.plugin_settings(fakes, library).items():
            await registry.save_settings(name, plugin_values, actor="bench")
            await registry.set_enabled(name, True, actor="bench")
    finally:
        await runner.cleanup()


@dataclass
class Instance:
    """``medianest serve`` running, signed in as the admin."""

    url: str
    proc: asyncio.subprocess.Process
    start_to_ready: float
    cookie: str = ""
    csrf: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {"BENCH_COOKIE": self.cookie, "BENCH_CSRF": self.csrf}


async def serve(values: dict[str, str], log: Path) -> Instance:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env |= {f"MEDIANEST_{k.upper()}": v for k, v in values.items()}
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "medianest", "serve", env=env, stdout=out, stderr=out
        )
    url = f"http://{LOOPBACK}:{values['port']}"
    try:
        ready = await wait_ready(url + "/readyz", proc)
    except BaseException:
        await stop(proc)
        raise
    instance = Instance(url, proc, ready)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        credentials = {"username": ADMIN[0], "password": ADMIN[1]}
        async with session.post(url + "/api/v1/auth/login", json=credentials) as response:
            if response.status != 200:
                raise BenchError(f"cannot sign in: {await response.text()}")
        async with session.get(url + "/api/v1/auth/me") as response:
            instance.csrf = (await response.json())["csrf_token"]
        instance.cookie = "; ".join(f"{c.key}={c.value}" for c in jar)
    return instance


# --- scenarios ------------------------------------------------------------------------------


def _fill(scenario: Scenario, result: WrkResult, baseline: float) -> None:
    scenario.requests_per_s = round(result.requests_per_s, 1)
    scenario.p50_ms = round(result.p50_ms, 2)
    scenario.p99_ms = round(result.p99_ms, 2)
    scenario.errors = result.errors
    scenario.ratio = round(result.requests_per_s / baseline, 4) if baseline else None
    scenario.cpu_ms = None if result.cpu_ms is None else round(result.cpu_ms, 3)


def _calls(fakes: demo.Fakes) -> Counter[str]:
    total: Counter[str] = Counter()
    for server in fakes.servers:
        name = type(server).__name__.removeprefix("Fake")
        total.update({f"{name} {k}": v for k, v in server.calls.items()})
    return total


class Bench:
    def __init__(self, options: Options, wrk: str) -> None:
        self.options = options
        self.wrk = wrk
        self.scenarios: list[Scenario] = []
        self.baseline_rps = 0.0
        self.facts: dict[str, Any] = {}

    async def wrk_run(
        self,
        url: str,
        script: str,
        *,
        profile: tuple[str, int] | None = None,
        connections: int | None = None,
        env: dict[str, str] | None = None,
    ) -> WrkResult:
        load = run_wrk(
            self.wrk,
            url,
            script,
            self.options.duration,
            connections or self.options.connections,
            env,
        )
        if profile is None:
            return await load
        name, pid = profile
        cpu = cpu_seconds(pid)
        spy = await self.profile(name, pid) if self.options.profile_dir else None
        try:
            result = await load
        finally:
            if spy is not None:
                await spy.wait()
        if result.raw["requests"]:
            result.cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / result.raw["requests"]
        return result

    async def profile(self, name: str, pid: int) -> asyncio.subprocess.Process:
        """py-spy sampling ``pid`` for the length of a scenario (collapsed stacks)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        assert self.options.profile_dir is not None
        self.options.profile_dir.mkdir(parents=True, exist_ok=True)
        out = self.options.profile_dir / f"{name}.txt"
        return await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(self.options.duration))),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def baseline(self) -> None:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.baseline", str(port), cwd=str(ROOT)
        )
        try:
            url = f"http://{LOOPBACK}:{port}/"
            await wait_ready(url, proc)
            result = await self.wrk_run(url, "hello.lua", profile=("baseline", proc.pid))
        finally:
            await stop(proc)
        scenario = Scenario("baseline", "bare aiohttp handler, 5 bytes", "the ceiling (100 %)")
        self.baseline_rps = result.requests_per_s
        _fill(scenario, result, self.baseline_rps)
        self.scenarios.append(scenario)

    async def dashboard_json(self, instance: Instance, name: str = "dashboard-json") -> Scenario:
        result = await self.wrk_run(
            instance.url + "/api/v1/dashboard",
            "get.lua",
            profile=(name, instance.proc.pid),
            env=instance.env,
        )
        scenario = Scenario(
            name,
            "GET /api/v1/dashboard, cookie session, widgets from cache",
            ">= 30 % of baseline, p99 < 20 ms at 50 connections",
        )
        _fill(scenario, result, self.baseline_rps)
        scenario.met = (scenario.ratio or 0) >= 0.30 and (scenario.p99_ms or 1e9) < 20
        return scenario

    async def dashboard_html(self, instance: Instance) -> Scenario:
        result = await self.wrk_run(
            instance.url + "/",
            "get.lua",
            profile=("dashboard-html", instance.proc.pid),
            env=instance.env | {"BENCH_ACCEPT": "text/html"},
        )
        scenario = Scenario(
            "dashboard-html", "GET / (HTML), five integrations enabled", ">= 15 % of baseline"
        )
        _fill(scenario, result, self.baseline_rps)
        scenario.met = (scenario.ratio or 0) >= 0.15 and scenario.errors == 0
        return scenario

    async def request_list(self, instance: Instance, name: str, target: str) -> Scenario:
        result = await self.wrk_run(
            instance.url + LIST_QUERY,
            "get.lua",
            profile=(name, instance.proc.pid),
            env=instance.env,
        )
        scenario = Scenario(name, f"GET {LIST_QUERY.split('?')[0]}: 20 of 10,000, filtered", target)
        _fill(scenario, result, self.baseline_rps)
        return scenario

    async def request_create(self, instance: Instance) -> Scenario:
        result = await self.wrk_run(
            instance.url + "/api/v1/requests",
            "create.lua",
            profile=("request-create", instance.proc.pid),
            env=instance.env | {"BENCH_FIRST_ID": str(FIRST_NEW_ID)},
        )
        scenario = Scenario(
            "request-create",
            "POST /api/v1/requests: validated, written, published",
            ">= 5 % of baseline, 0 errors",
        )
        _fill(scenario, result, self.baseline_rps)
        scenario.extra["created"] = result.raw["requests"]
        scenario.met = (scenario.ratio or 0) >= 0.05 and scenario.errors == 0
        return scenario

    async def viewers(self, instance: Instance, fakes: demo.Fakes) -> Scenario:
        """200 viewers for a while, against the same time with nobody looking: the upstream
        calls must be the pollers' own (one per poll interval), not one per viewer."""
        window = self.options.viewers_duration
        before = _calls(fakes)
        await asyncio.sleep(window)
        idle = _calls(fakes) - before
        before = _calls(fakes)
        result = await run_wrk(
            self.wrk, instance.url + "/api/v1/dashboard", "get.lua", window, 200, instance.env
        )
        loaded = _calls(fakes) - before
        scenario = Scenario(
            "viewers-200",
            f"200 dashboard viewers for {window:.0f} s",
            "upstream calls = 1 per poll interval (as many as with nobody looking)",
        )
        _fill(scenario, result, self.baseline_rps)
        # A poller whose interval ends inside one window and not the other makes one more.
        extra = {k: v - idle.get(k, 0) for k, v in loaded.items() if v > idle.get(k, 0) + 1}
        scenario.extra = {
            "upstream_calls_idle": sum(idle.values()),
            "upstream_calls_loaded": sum(loaded.values()),
            "calls_beyond_polling": extra,
            "viewer_requests": result.raw["requests"],
        }
        scenario.met = not extra and scenario.errors == 0
        return scenario

    async def upstream_hung(
        self, instance: Instance, fakes: demo.Fakes, healthy: Scenario
    ) -> Scenario:
        fakes.tautulli.faults.hang = True
        try:
            result = await self.wrk_run(
                instance.url + "/api/v1/dashboard",
                "get.lua",
                profile=("upstream-hung", instance.proc.pid),
                env=instance.env,
            )
        finally:
            fakes.tautulli.faults.clear()
        scenario = Scenario(
            "upstream-hung",
            "dashboard JSON with Tautulli never answering",
            "p99 within 1.5x of the healthy run, 0 errors",
        )
        _fill(scenario, result, self.baseline_rps)
        scenario.extra["healthy_p99_ms"] = healthy.p99_ms
        if healthy.p99_ms and scenario.p99_ms is not None:
            scenario.extra["p99_vs_healthy"] = round(scenario.p99_ms / healthy.p99_ms, 2)
            scenario.met = scenario.p99_ms <= 1.5 * healthy.p99_ms and scenario.errors == 0
        return scenario

    async def ws_fanout(self, instance: Instance) -> Scenario:
        count = self.options.subscribers
        ws_url = instance.url.replace("http://", "ws://") + "/ws"
        film = FIRST_NEW_ID - 1
        # The clients count the request's own announcement: other events on the topic (the
        # progress of requests being tracked) are read and skipped.
        match = ["created", "tmdb_id", str(film)]
        shares = [count // WS_CLIENT_PROCESSES] * WS_CLIENT_PROCESSES
        shares[0] += count - sum(shares)
        clients = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.wsclients",
                ws_url,
                instance.cookie,
                str(share),
                "requests",
                *match,
                cwd=str(ROOT),
                stdout=asyncio.subprocess.PIPE,
            )
            for share in shares
            if share
        ]
        scenario = Scenario(
            "ws-fanout",
            f"one event to {count:,} websocket subscribers",
            "all receive it within 1 s; RSS stated",
        )
        try:
            subscribed = 0
            for client in clients:
                assert client.stdout is not None
                ready = (await asyncio.wait_for(client.stdout.readline(), 600)).decode()
                if not ready.startswith("READY"):
                    raise BenchError(f"the websocket clients did not connect: {ready!r}")
                subscribed += int(ready.split()[1])
            scenario.rss_mb = round(rss_mb(instance.proc.pid), 1)
            async with aiohttp.ClientSession(
                headers={"Cookie": instance.cookie, "X-CSRF-Token": instance.csrf}
            ) as session:
                sent = time.time()
                body = {"media_type": "movie", "tmdb_id": film}
                async with session.post(instance.url + "/api/v1/requests", json=body) as answer:
                    status = answer.status
                answered = time.time()
            reports = []
            for client in clients:
                assert client.stdout is not None
                reports.append(json.loads(await asyncio.wait_for(client.stdout.readline(), 120)))
            rss_after = rss_mb(instance.proc.pid)
        finally:
            for client in clients:
                with contextlib.suppress(ProcessLookupError):
                    client.terminate()
                await client.wait()
        received = sum(r["received"] for r in reports)
        firsts = [r["first"] for r in reports if r["first"]]
        lasts = [r["last"] for r in reports if r["last"]]
        last = max(lasts) if len(lasts) == len(reports) else None
        first = min(firsts, default=None)
        scenario.errors = (count - received) + (0 if status < 300 else 1)
        scenario.extra = {
            "subscribed": subscribed,
            "received": received,
            "client_processes": len(clients),
            "post_status": status,
            "post_answered_s": round(answered - sent, 3),
            "last_delivery_after_post_s": round(last - sent, 3) if last else None,
            "first_to_last_delivery_s": round(last - first, 3) if last and first else None,
            "rss_after_event_mb": round(rss_after, 1),
        }
        scenario.met = scenario.errors == 0 and bool(last) and last - sent <= 1.0
        return scenario

    async def run(self) -> dict[str, Any]:
        options = self.options
        await self.baseline()
        with tempfile.TemporaryDirectory(prefix="medianest-bench-") as tmp:
            data_dir = Path(tmp)
            library = data_dir / "youtube"
            library.mkdir()
            fakes = await demo.start_fakes()
            fakes.tmdb.movies.update(bench_movies(20_000 if not options.quick else 5_000))
            try:
                values = bench_settings(data_dir / "sqlite", free_port(), None)
                await prepare(values, fakes, library)
                instance = await serve(values, data_dir / "serve.log")
                try:
                    await self._scenarios(instance, fakes)
                finally:
                    await stop(instance.proc)
                if options.postgres_url and "request-list" in options.scenarios:
                    pg_values = bench_settings(
                        data_dir / "postgres", free_port(), options.postgres_url
                    )
                    await prepare(pg_values, fakes, library)
                    pg = await serve(pg_values, data_dir / "serve-postgres.log")
                    try:
                        self.scenarios.append(
                            await self.request_list(
                                pg, "request-list-postgres", "stated (no target)"
                            )
                        )
                    finally:
                        await stop(pg.proc)
            finally:
                await fakes.stop()
        return self.report()

    async def _scenarios(self, instance: Instance, fakes: demo.Fakes) -> None:
        wanted = self.options.scenarios
        # Settled: the pollers' first rounds are done before anything is measured.
        await asyncio.sleep(2 if self.options.quick else 5)
        idle = Scenario("idle", "idle process after start", "RSS < 100 MB; start to ready < 2 s")
        idle.rss_mb = round(rss_mb(instance.proc.pid), 1)
        idle.extra["start_to_ready_s"] = round(instance.start_to_ready, 3)
        idle.met = idle.rss_mb < 100 and instance.start_to_ready < 2
        self.scenarios.append(idle)
        healthy: Scenario | None = None
        if "dashboard-json" in wanted or "upstream-hung" in wanted:
            healthy = await self.dashboard_json(instance)
            self.scenarios.append(healthy)
        if "dashboard-html" in wanted:
            self.scenarios.append(await self.dashboard_html(instance))
        if "request-list" in wanted:
            listing = await self.request_list(instance, "request-list", ">= 10 % of baseline")
            listing.met = (listing.ratio or 0) >= 0.10 and listing.errors == 0
            self.scenarios.append(listing)
        if "request-create" in wanted:
            self.scenarios.append(await self.request_create(instance))
        if "viewers" in wanted:
            self.scenarios.append(await self.viewers(instance, fakes))
        if "upstream-hung" in wanted and healthy is not None:
            self.scenarios.append(await self.upstream_hung(instance, fakes, healthy))
        if "ws-fanout" in wanted:
            self.scenarios.append(await self.ws_fanout(instance))

    def report(self) -> dict[str, Any]:
        options = self.options
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "system": f"{platform.system()} {platform.release()}",
                "processor": platform.machine(),
            },
            "mode": "quick" if options.quick else "full",
            "duration_s": options.duration,
            "connections": options.connections,
            "baseline_requests_per_s": round(self.baseline_rps, 1),
            "scenarios": [s.as_json() for s in self.scenarios],
        }


# --- output ---------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (readable in a terminal as it is)."""
    head = (
        "| scenario | req/s | p50 ms | p99 ms | errors | vs baseline | CPU ms/req | RSS MB "
        "| target | met |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for s in report["scenarios"]:
        met = {True: "yes", False: "**no**", None: "-"}[s["met"]]
        ratio = "-" if s["ratio"] is None else f"{s['ratio'] * 100:.1f} %"
        lines.append(
            f"| {s['name']} | {_num(s['requests_per_s'])} | {_num(s['p50_ms'], 2)} "
            f"| {_num(s['p99_ms'], 2)} | {'-' if s['errors'] is None else s['errors']} "
            f"| {ratio} | {_num(s['cpu_ms_per_request'], 2)} | {_num(s['rss_mb'])} "
            f"| {s['target']} | {met} |"
        )
    notes = []
    for s in report["scenarios"]:
        if s["extra"]:
            details = ", ".join(f"{k}={v}" for k, v in s["extra"].items())
            notes.append(f"- {s['name']}: {details}")
    machine = report["machine"]
    header = (
        f"{report['date']} · {machine['cpus']} CPUs · Python {machine['python']} "
        f"({machine['system']}, {machine['processor']}) · {report['mode']} run, "
        f"{report['duration_s']:g} s per scenario, {report['connections']} connections"
    )
    return "\n".join([header, "", *lines, "", *notes])


def update_results(path: Path, report: dict[str, Any]) -> None:
    """Replace the latest table in ``path`` (between its markers), keeping what surrounds it."""
    block = f"{MARK_START}\n{table(report)}\n{MARK_END}"
    text = (
        path.read_text() if path.exists() else f"# Benchmark results\n\n{MARK_START}\n{MARK_END}\n"
    )
    if MARK_START in text and MARK_END in text:
        before, rest = text.split(MARK_START, 1)
        after = rest.split(MARK_END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few seconds each")
    parser.add_argument("--duration", type=float, help="seconds per scenario (full: 15)")
    parser.add_argument(
        "--viewers-duration", type=float, help="seconds of the 200 viewers (full: 60)"
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--subscribers", type=int, help="websockets (full: 10,000)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=ALL_SCENARIOS,
        help="run only these (repeatable; default: all)",
    )
    parser.add_argument("--json", type=Path, help="where to write the JSON (bench/results.json)")
    parser.add_argument(
        "--results",
        type=Path,
        help="the Markdown file whose latest table is replaced (full runs of every scenario: "
        "bench/RESULTS.md, and the README's copy)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("MEDIANEST_BENCH_DATABASE_URL"),
        help="also list requests on this (empty) PostgreSQL database "
        "(default: $MEDIANEST_BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server with py-spy during each scenario; collapsed stacks into DIR",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    # Only a full run of every scenario replaces the published tables.
    complete = not quick and not args.scenario
    return Options(
        quick=quick,
        duration=args.duration or (3.0 if quick else 15.0),
        viewers_duration=args.viewers_duration or (3.0 if quick else 60.0),
        connections=args.connections,
        subscribers=args.subscribers or (500 if quick else 10_000),
        scenarios=args.scenario or ALL_SCENARIOS,
        json_path=args.json or HERE / "results.json",
        results_path=args.results or (HERE / "RESULTS.md" if complete else None),
        readme_path=ROOT / "README.md" if complete and not args.results else None,
        postgres_url=args.postgres or None,
        profile_dir=args.profile,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    try:
        wrk = ensure_wrk()
        # Thousands of sockets (wrk's, the websockets'): as many files as the system allows.
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        report = asyncio.run(Bench(options, wrk).run())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(table(report))
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_text(json.dumps(report, indent=2) + "\n")
    if options.results_path is not None:
        update_results(options.results_path, report)
    if options.readme_path is not None and MARK_START in options.readme_path.read_text():
        update_results(options.readme_path, report)
    return 0 if not math.isnan(report["baseline_requests_per_s"]) else 1
