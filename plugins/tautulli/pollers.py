"""Background refreshes of Tautulli's data, shared by every viewer.

Each poller runs the widget's own call with the cache TTL equal to its interval, so however many
people watch and however many MediaNest processes run, Tautulli is asked once per interval. When
the answer changed, it announces it on the widget's topic and open dashboards re-render.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from medianest import Fetched, PluginContext, Poller

from .client import Activity, client_for

ACTIVITY_INTERVAL = 10.0
HISTORY_INTERVAL = 60.0
STATS_INTERVAL = 600.0

ACTIVITY_TOPIC = "tautulli.activity"
STATS_TOPIC = "tautulli.stats"
HISTORY_TOPIC = "tautulli.history"
TOPICS = [ACTIVITY_TOPIC, STATS_TOPIC, HISTORY_TOPIC]


def pollers() -> list[Poller]:
    # Read at start-up, so the intervals above are what the pollers use.
    return [
        Poller("activity", ACTIVITY_INTERVAL, poll_activity),
        Poller("stats", STATS_INTERVAL, poll_stats),
        Poller("history", HISTORY_INTERVAL, poll_history),
    ]


async def poll_activity(plugin: PluginContext) -> None:
    client = client_for(plugin)
    if client is None:
        return
    fetched = await client.activity(ttl=ACTIVITY_INTERVAL)
    summary: dict[str, Any] = {}
    if fetched.value is not None:
        summary = _counts(fetched.value)
    await _announce(plugin, ACTIVITY_TOPIC, fetched, summary, ACTIVITY_INTERVAL)


async def poll_stats(plugin: PluginContext) -> None:
    client = client_for(plugin)
    if client is None:
        return
    fetched = await client.watch_stats(ttl=STATS_INTERVAL)
    await _announce(plugin, STATS_TOPIC, fetched, {}, STATS_INTERVAL)


async def poll_history(plugin: PluginContext) -> None:
    client = client_for(plugin)
    if client is None:
        return
    fetched = await client.history(ttl=HISTORY_INTERVAL)
    await _announce(plugin, HISTORY_TOPIC, fetched, {}, HISTORY_INTERVAL)


def _counts(activity: Activity) -> dict[str, Any]:
    # Events reach every signed-in subscriber: counts only, never who watches what.
    return {
        "streams": activity.stream_count,
        "transcodes": activity.transcodes,
        "bandwidth_kbps": activity.total_bandwidth,
    }


def _fingerprint(fetched: Fetched[Any]) -> str:
    value = fetched.value.model_dump_json() if fetched.value is not None else ""
    error = str(fetched.error) if fetched.error is not None else ""
    return hashlib.sha256(f"{error}\n{value}".encode()).hexdigest()


async def _announce(
    plugin: PluginContext,
    topic: str,
    fetched: Fetched[Any],
    summary: Mapping[str, Any],
    interval: float,
) -> None:
    """Publish ``topic`` when what its widget shows has changed since the last announcement
    (remembered in the shared cache, so that several processes announce a change once)."""
    mark = _fingerprint(fetched)
    key = f"tautulli:announced:{topic}"
    if await plugin.cache.get(key) == mark:
        return
    await plugin.cache.set(key, mark, max(60.0, interval * 3))
    if fetched.error is not None:
        plugin.log.warning("%s: %s", topic, fetched.error)
    await plugin.publish(topic, "updated", {"ok": fetched.error is None, **summary})
