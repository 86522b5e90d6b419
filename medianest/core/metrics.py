"""Prometheus metrics MediaNest keeps, in one registry per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
