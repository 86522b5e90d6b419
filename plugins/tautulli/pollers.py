"""Background refreshes of Tautulli's data, shared by every viewer.

One coordinator per widget reads the widget's call every interval (a setting), with the cache
TTL equal to the interval, so however many people watch and however many MediaNest processes
run, Tautulli is asked once per interval. When the answer changed, the coordinator announces it
on the widget's topic (once across processes) and open dashboards re-render.
"""

from __future__ import annotations

from typing import Any

from medianest import Coordinator, Fetched, PluginContext

from .client import Activity, History, WatchStats, client_for

ACTIVITY_TOPIC = "tautulli.activity"
STATS_TOPIC = "tautulli.stats"
HISTORY_TOPIC = "tautulli.history"
TOPICS = [ACTIVITY_TOPIC, STATS_TOPIC, HISTORY_TOPIC]


async def read_activity(plugin: PluginContext, interval: float) -> Fetched[Activity] | None:
    client = client_for(plugin)
    return None if client is None else await client.activity(ttl=interval)


async def read_stats(plugin: PluginContext, interval: float) -> Fetched[WatchStats] | None:
    client = client_for(plugin)
    return None if client is None else await client.watch_stats(ttl=interval)


async def read_history(plugin: PluginContext, interval: float) -> Fetched[History] | None:
    client = client_for(plugin)
    return None if client is None else await client.history(ttl=interval)


def _counts(fetched: Fetched[Activity] | None) -> dict[str, Any]:
    # Events reach every signed-in subscriber: counts only, never who watches what.
    activity = fetched.value if fetched is not None else None
    if activity is None:
        return {}
    return {
        "streams": activity.stream_count,
        "transcodes": activity.transcodes,
        "bandwidth_kbps": activity.total_bandwidth,
    }


ACTIVITY: Coordinator[Fetched[Activity] | None] = Coordinator(
    "activity",
    read_activity,
    interval=lambda settings: settings.activity_interval,
    topic=ACTIVITY_TOPIC,
    summary=_counts,
)
STATS: Coordinator[Fetched[WatchStats] | None] = Coordinator(
    "stats", read_stats, interval=lambda settings: settings.stats_interval, topic=STATS_TOPIC
)
HISTORY: Coordinator[Fetched[History] | None] = Coordinator(
    "history",
    read_history,
    interval=lambda settings: settings.history_interval,
    topic=HISTORY_TOPIC,
)
