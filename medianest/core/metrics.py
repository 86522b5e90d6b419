"""Prometheus metrics MediaNest keeps, in one registry per process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

REGISTRY = CollectorRegistry(auto_describe=True)

UPSTREAM_REQUESTS = Counter(
    "medianest_upstream_requests",
    "Calls to upstream services, by outcome (ok, unreachable, timeout, unauthorised, "
    "bad_response, circuit_open) and HTTP status.",
    ["service", "instance", "outcome", "status"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "medianest_upstream_request_seconds",
    "Time an upstream call took, retries included.",
    ["service", "instance"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
UPSTREAM_BREAKER = Gauge(
    "medianest_upstream_breaker_state",
    "Circuit breaker per service instance: 0 closed, 1 half-open, 2 open.",
    ["service", "instance"],
    registry=REGISTRY,
)
UPSTREAM_CACHE = Counter(
    "medianest_upstream_cache",
    "Upstream answers served from the cache (hit) or fetched (miss).",
    ["service", "instance", "result"],
    registry=REGISTRY,
)

# --- the web process ------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "medianest_http_requests",
    "Answered HTTP requests, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "medianest_http_request_duration_seconds",
    "Time to answer an HTTP request (websockets left out), by route template and method.",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
WEBSOCKETS = Gauge(
    "medianest_websocket_connections",
    "Open websocket connections on this process.",
    registry=REGISTRY,
)
DEPENDENCY_UP = Gauge(
    "medianest_dependency_up",
    "Whether a dependency answers: the database, Redis (1 up, 0 down).",
    ["dependency"],
    registry=REGISTRY,
)
PLUGIN_HEALTH = Gauge(
    "medianest_plugin_health",
    "The last health check of each integration's services: 1 ok, 0.5 degraded, 0 down.",
    ["plugin", "check"],
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "medianest_build_info", "The running version (always 1).", ["version"], registry=REGISTRY
)

# --- what happens in MediaNest --------------------------------------------------------------

REQUESTS_BY_STATUS = Gauge(
    "medianest_requests",
    "Media requests by status (read from the database when scraped).",
    ["status"],
    registry=REGISTRY,
)
REQUEST_DECISIONS = Counter(
    "medianest_request_decisions",
    "Requests approved or declined on this process (auto-approvals included).",
    ["decision"],
    registry=REGISTRY,
)
ACTIVE_USERS = Gauge(
    "medianest_active_users",
    "Signed-in users seen in the last 15 minutes (read from the database when scraped).",
    registry=REGISTRY,
)


def route_label(request: web.Request) -> str:
    """The route template a request matched (``/api/v1/requests/{id}``), so that ids do not
    make a series each."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


_HttpSeries = tuple[Any, Any]  # the counter's and the histogram's (or None) children
_HTTP_SERIES: dict[tuple[str, str, int], _HttpSeries] = {}


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    """Count an answered request and how long it took (websockets are not timed)."""
    route = route_label(request)
    key = (route, request.method, status)
    # The children of a label set never change: look them up once, not on every request.
    series = _HTTP_SERIES.get(key)
    if series is None:
        series = (
            HTTP_REQUESTS.labels(route, request.method, str(status)),
            HTTP_LATENCY.labels(route, request.method) if route != "/ws" else None,
        )
        _HTTP_SERIES[key] = series
    series[0].inc()
    if series[1] is not None:
        series[1].observe(seconds)


# --- jobs -----------------------------------------------------------------------------------

JOBS = Counter(
    "medianest_jobs",
    "Job attempts run by this process, by job type and outcome (ok, retried, failed, cancelled).",
    # Not "job": Prometheus keeps that label for its own scrape job.
    ["job_type", "outcome"],
    registry=REGISTRY,
)
JOBS_QUEUED = Gauge(
    "medianest_jobs_queue_depth",
    "Jobs waiting to run (the shared queue in Redis, or this process's own).",
    registry=REGISTRY,
)


# --- what plugins export --------------------------------------------------------------------


class PluginGauges:
    """The gauges plugins declare (``register_metrics``), as the last scrape read them."""

    def __init__(self) -> None:
        self.families: list[GaugeMetricFamily] = []

    def describe(self) -> list[Metric]:
        # Nothing to check against the kernel's names when registering: set at each scrape.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.families


PLUGIN_GAUGES = PluginGauges()
REGISTRY.register(PLUGIN_GAUGES)
