"""What an operator looks at: readiness, Prometheus metrics and the system page.

``/healthz`` says the process is alive (in ``views``); ``/readyz`` says it can serve: the
database answers at the current schema, Redis answers when configured. Each integration's health
is listed there too, but an upstream being down never makes MediaNest unready: the portal still
serves, with that integration degraded. Health checks of the integrations are cached for a short
while, so that probes and scrapes every few seconds do not turn into upstream calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import aiohttp_jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel
from sqlalchemy import Table, func, select, text

from .. import __version__
from ..core import hookspecs
from ..core.auth import Permission
from ..core.db import schema_status
from ..core.errors import ApiError
from ..core.extensions import HealthResult, Metric, Route, call_with, resolve
from ..core.keys import CACHE, CLIENT_ADDRESS, ENGINE, HUB, REDIS, REGISTRY, SETTINGS
from ..core.metrics import (
    ACTIVE_USERS,
    BUILD_INFO,
    DEPENDENCY_UP,
    JOBS_QUEUED,
    PLUGIN_GAUGES,
    PLUGIN_HEALTH,
    REQUESTS_BY_STATUS,
    WEBSOCKETS,
)
from ..core.metrics import (
    REGISTRY as METRICS,
)
from ..core.models import Session
from ..core.settings import Settings
from ..requests.models import MediaRequest
from ..requests.workflow import STATUSES

log = logging.getLogger(__name__)

HEALTH_TTL = 30.0
HEALTH_TIMEOUT = 10.0
SCORE = {"ok": 1.0, "degraded": 0.5, "down": 0.0}
requests_t = cast(Table, MediaRequest.__table__)
sessions_t = cast(Table, Session.__table__)


class Component(BaseModel):
    name: str
    status: Literal["ok", "down", "not configured"]
    latency_ms: float | None = None
    message: str = ""


class ServiceCheck(BaseModel):
    plugin: str
    name: str
    status: str
    message: str = ""
    latency_ms: float | None = None
    version: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    version: str
    components: list[Component]
    services: list[ServiceCheck]


async def _timed(check: Any) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, timeout=5)
    except Exception as exc:
        return (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}"[:300]
    return (time.perf_counter() - started) * 1000, None


async def components(app: web.Application) -> list[Component]:
    """The database (at the current schema) and Redis, checked now."""
    engine = app[ENGINE]

    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    found = []
    latency, problem = await _timed(database())
    found.append(
        Component(
            name="database",
            status="down" if problem else "ok",
            latency_ms=round(latency, 1),
            message=problem or engine.dialect.name,
        )
    )
    if problem is None:
        schema = await schema_status(engine, app[REGISTRY].branches())
        message = (
            f"at {schema.current}"
            if schema.up_to_date
            else f"at {schema.current}, code needs {schema.head}: run `medianest migrate`"
        )
        # A plugin whose tables are behind is not started; the rest of MediaNest serves.
        behind = [p.name for p in schema.plugins if not p.up_to_date]
        if behind:
            message += f"; the tables of {', '.join(behind)} are behind: run `medianest migrate`"
        found.append(
            Component(
                name="migrations",
                status="ok" if schema.up_to_date else "down",
                message=message,
            )
        )
    redis = app.get(REDIS)
    if redis is None:
        found.append(Component(name="redis", status="not configured", message="in-memory cache"))
    else:
        latency, problem = await _timed(redis.ping())
        found.append(
            Component(
                name="redis",
                status="down" if problem else "ok",
                latency_ms=round(latency, 1),
                message=problem or "",
            )
        )
    for component in found:
        if component.name in ("database", "redis"):
            DEPENDENCY_UP.labels(component.name).set(1 if component.status == "ok" else 0)
    return found


async def services(app: web.Application) -> list[ServiceCheck]:
    """Every enabled integration's own health, at most HEALTH_TTL seconds old."""
    registry = app[REGISTRY]

    async def check_all() -> list[dict[str, Any]]:
        async def one(name: str) -> list[dict[str, Any]]:
            try:
                result = await asyncio.wait_for(
                    registry.call_plugin(name, hookspecs.check_health), HEALTH_TIMEOUT
                )
            except TimeoutError:
                result = HealthResult(name, "down", "the health check did not finish in time")
            results = result if isinstance(result, list) else [result] if result else []
            return [
                {
                    "plugin": name,
                    "name": r.name,
                    "status": r.status,
                    "message": r.message,
                    "latency_ms": r.latency_ms,
                    "version": r.version,
                }
                for r in results
                if isinstance(r, HealthResult)
            ]

        names = [r.name for r in registry.active_records()]
        return [c for found in await asyncio.gather(*(one(n) for n in names)) for c in found]

    active = ",".join(sorted(r.name for r in registry.active_records()))
    try:
        checks = await app[CACHE].get_or_compute(f"ops:health:{active}", HEALTH_TTL, check_all)
    except Exception:  # the shared cache is down (Redis): readiness says so; ask directly
        checks = await check_all()
    found = [ServiceCheck(**c) for c in checks]
    PLUGIN_HEALTH.clear()
    for check in found:
        if check.status in SCORE:
            PLUGIN_HEALTH.labels(check.plugin, check.name).set(SCORE[check.status])
    return found


async def readiness(app: web.Application) -> Readiness:
    parts, checks = await asyncio.gather(components(app), services(app))
    ready = all(c.status != "down" for c in parts)
    return Readiness(
        status="ready" if ready else "not ready",
        version=__version__,
        components=parts,
        services=checks,
    )


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready to serve: database at the current schema, Redis when configured (503 if not)."""
    found = await readiness(request.app)
    return web.Response(
        status=200 if found.status == "ready" else 503,
        body=found.model_dump_json().encode(),
        content_type="application/json",
    )


# --- metrics --------------------------------------------------------------------------------


def metrics_allowed(settings: Settings, authorization: str, client: str | None) -> bool:
    """Whether a scrape may read the metrics: the bearer token when one is set, else the
    client's address in the allowlist."""
    if settings.metrics_token is not None:
        given = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        expected = settings.metrics_token.get_secret_value()
        return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False) for network in settings.metrics_allow
    )


async def _business_figures(app: web.Application) -> None:
    engine = app[ENGINE]
    since = datetime.now(UTC) - timedelta(minutes=15)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(requests_t.c.status, func.count()).group_by(requests_t.c.status)
        )
        counted: dict[str, int] = {status: count for status, count in rows}
        active = await conn.scalar(
            select(func.count(func.distinct(sessions_t.c.user_id))).where(
                sessions_t.c.last_seen_at >= since
            )
        )
    for status in STATUSES:
        REQUESTS_BY_STATUS.labels(status).set(counted.get(status, 0))
    ACTIVE_USERS.set(active or 0)
    jobs = app[REGISTRY].jobs
    if jobs is not None:
        # When the queue in Redis is unreachable, readiness says so.
        with contextlib.suppress(Exception):
            JOBS_QUEUED.set(await jobs.depth())


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


async def _plugin_gauges(app: web.Application) -> None:
    """Read the gauges plugins export: each enabled plugin's, each on its own (one that
    fails is left without a value and shown on the admin page); a disabled plugin's are
    exported without a value."""
    registry = app[REGISTRY]
    declared: list[tuple[str, Metric]] = []
    for record in registry.records.values():
        for metric in record.metrics:
            if not _METRIC_NAME.fullmatch(metric.name) or any(
                metric.name == m.name for _, m in declared
            ):
                problem = ValueError(f"{metric.name!r} is not a free metric name")
                if registry.note_failure(record.name, f"metric {metric.name}", problem):
                    log.error("plugin %s: %s", record.name, problem)
                continue
            declared.append((record.name, metric))

    async def read(name: str, metric: Metric) -> GaugeMetricFamily:
        family = GaugeMetricFamily(metric.name, metric.description, labels=list(metric.labels))
        if not registry.is_active(name):
            return family
        what = f"metric {metric.name}"
        try:
            value = await resolve(call_with(metric.read, plugin=registry.context(name)))
            samples = value.items() if isinstance(value, Mapping) else [((), value)]
            for labels, number in samples:
                key = (labels,) if isinstance(labels, str) else tuple(labels)
                family.add_metric([str(v) for v in key], float(number))
        except Exception as exc:
            if registry.note_failure(name, what, exc):
                log.exception("plugin %s failed to read %s", name, what)
            return GaugeMetricFamily(metric.name, metric.description, labels=list(metric.labels))
        registry.note_success(name, what)
        return family

    PLUGIN_GAUGES.families = list(await asyncio.gather(*(read(n, m) for n, m in declared)))


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus metrics of this process: a bearer token, or an allowed address."""
    allowed = metrics_allowed(
        request.app[SETTINGS], request.headers.get("Authorization", ""), request.get(CLIENT_ADDRESS)
    )
    if not allowed:
        raise ApiError(
            403,
            "Metrics need the bearer token set in MEDIANEST_METRICS_TOKEN, or a client address "
            "in MEDIANEST_METRICS_ALLOW.",
        )
    app = request.app
    BUILD_INFO.labels(__version__).set(1)
    WEBSOCKETS.set(app[HUB].connections)
    await asyncio.gather(
        components(app), services(app), _business_figures(app), _plugin_gauges(app)
    )
    return web.Response(
        body=generate_latest(METRICS), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


# --- the system page ------------------------------------------------------------------------


class ClientState(BaseModel):
    plugin: str
    service: str
    instance: str
    state: str
    breaker: str
    last_error: str | None
    latency_ms: float | None


class SystemOut(Readiness):
    websocket_connections: int
    clients: list[ClientState]


def _clients(app: web.Application) -> list[ClientState]:
    registry = app[REGISTRY]
    found = []
    for record in registry.active_records():
        for client in registry.context(record.name).service_clients():
            health = client.health()
            found.append(
                ClientState(
                    plugin=record.name,
                    service=client.config.service,
                    instance=client.config.instance,
                    state=health.state,
                    breaker=str(health.breaker),
                    last_error=health.last_error,
                    latency_ms=health.latency_ms,
                )
            )
    return found


async def _system(request: web.Request) -> SystemOut:
    found = await readiness(request.app)
    return SystemOut(
        **found.model_dump(),
        websocket_connections=request.app[HUB].connections,
        clients=_clients(request.app),
    )


async def system(request: web.Request) -> SystemOut:
    """Every component and service instance: state, latency, breaker, last error, version."""
    return await _system(request)


async def system_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template(
        "admin/system.html", request, {"system": await _system(request)}
    )


def worker_metrics_app(settings: Settings, jobs: Any) -> web.Application:
    """The one route a ``medianest worker`` serves: its own metrics (jobs run there)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if not metrics_allowed(settings, request.headers.get("Authorization", ""), request.remote):
            return web.json_response(
                {"error": {"code": "forbidden", "message": "Metrics need the bearer token."}},
                status=403,
            )
        BUILD_INFO.labels(__version__).set(1)
        with contextlib.suppress(Exception):
            JOBS_QUEUED.set(await jobs.depth())
        return web.Response(
            body=generate_latest(METRICS), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


SETTINGS_ACCESS = Permission.MANAGE_SETTINGS.value
OPS_ROUTES = [
    Route("GET", "/readyz", readyz, response=Readiness, access="public"),
    # Checked by the handler itself (a bearer token or an address), not by a user's session.
    Route("GET", "/metrics", metrics, include_in_schema=False, access="public"),
    Route("GET", "/admin/system", system_page, include_in_schema=False, access=SETTINGS_ACCESS),
    Route("GET", "/api/v1/system", system, response=SystemOut, access=SETTINGS_ACCESS),
]
