"""A plain reachability check for plugins' health hooks, from before the service clients.

Deprecated: ``medianest.probe`` warns and goes in 0.2. A plugin checks its service with
``plugin.service_client`` (``plugin.trial_client`` for settings not saved yet), which knows its
credentials, timeouts and breaker.
"""

from __future__ import annotations

import time

import aiohttp

from .extensions import HealthResult


async def probe(name: str, url: str | None, seconds: float = 5.0) -> HealthResult:
    """Report whether ``url`` answers HTTP at all (any status counts as reachable)."""
    if not url:
        return HealthResult(name, "unconfigured", "No server address is set.")
    started = time.perf_counter()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            status = response.status
    except TimeoutError:
        return HealthResult(name, "down", f"No answer from {url} within {seconds:g} s.")
    except aiohttp.ClientError as exc:
        return HealthResult(name, "down", f"{url} is unreachable: {exc}")
    latency = (time.perf_counter() - started) * 1000
    return HealthResult(name, "ok", f"{url} answered HTTP {status}.", latency_ms=round(latency, 1))
