"""Background refreshes of every instance's data, shared by every viewer.

Each poller runs its widget's own call for each instance, with the cache TTL equal to its
interval, so however many people watch and however many MediaNest processes run, each instance
is asked once per interval. When what an instance's widget shows has changed, it is announced on
the widget's topic (naming the instance) and open dashboards re-render.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from medianest import Fetched, PluginContext, Poller

from .client import Arr, instances

QUEUE_INTERVAL = 10.0
UPCOMING_INTERVAL = 600.0
WANTED_INTERVAL = 300.0
DISK_INTERVAL = 600.0
HEALTH_INTERVAL = 120.0

QUEUE_TOPIC = "arr.queue"
UPCOMING_TOPIC = "arr.upcoming"
WANTED_TOPIC = "arr.wanted"
DISK_TOPIC = "arr.disk"
HEALTH_TOPIC = "arr.health"
TOPICS = [QUEUE_TOPIC, UPCOMING_TOPIC, WANTED_TOPIC, DISK_TOPIC, HEALTH_TOPIC]


def pollers() -> list[Poller]:
    # Read at start-up, so the intervals above are what the pollers use.
    return [
        Poller("queue", QUEUE_INTERVAL, poll_queue),
        Poller("upcoming", UPCOMING_INTERVAL, poll_upcoming),
        Poller("wanted", WANTED_INTERVAL, poll_wanted),
        Poller("disk", DISK_INTERVAL, poll_disk),
        Poller("health", HEALTH_INTERVAL, poll_health),
    ]


Refresh = Callable[[PluginContext, Arr], Awaitable[None]]


async def _each(plugin: PluginContext, refresh: Refresh) -> None:
    await asyncio.gather(*(refresh(plugin, arr) for arr in instances(plugin)))


async def poll_queue(plugin: PluginContext) -> None:
    await _each(plugin, refresh_queue)


async def poll_upcoming(plugin: PluginContext) -> None:
    await _each(plugin, refresh_upcoming)


async def poll_wanted(plugin: PluginContext) -> None:
    await _each(plugin, refresh_wanted)


async def poll_disk(plugin: PluginContext) -> None:
    await _each(plugin, refresh_disk)


async def poll_health(plugin: PluginContext) -> None:
    await _each(plugin, refresh_health)


async def refresh_queue(plugin: PluginContext, arr: Arr, *, force: bool = False) -> None:
    """Read the instance's queue (``force``: now, not from the cache) and announce changes."""
    if force:
        await arr.forget_queue()
    fetched = await arr.queue(ttl=QUEUE_INTERVAL)
    summary = {"count": fetched.value.total_records} if fetched.value is not None else {}
    await announce(plugin, QUEUE_TOPIC, arr, fetched, summary, QUEUE_INTERVAL)


async def refresh_upcoming(plugin: PluginContext, arr: Arr) -> None:
    fetched = await arr.upcoming(ttl=UPCOMING_INTERVAL)
    summary = {"count": len(fetched.value)} if fetched.value is not None else {}
    await announce(plugin, UPCOMING_TOPIC, arr, fetched, summary, UPCOMING_INTERVAL)


async def refresh_wanted(plugin: PluginContext, arr: Arr, *, force: bool = False) -> None:
    if force:
        await arr.forget_wanted()
    fetched = await arr.wanted(ttl=WANTED_INTERVAL)
    summary = {"missing": fetched.value.missing} if fetched.value is not None else {}
    await announce(plugin, WANTED_TOPIC, arr, fetched, summary, WANTED_INTERVAL)


async def refresh_disk(plugin: PluginContext, arr: Arr) -> None:
    fetched = await arr.disks(ttl=DISK_INTERVAL)
    await announce(plugin, DISK_TOPIC, arr, fetched, {}, DISK_INTERVAL)


async def refresh_health(plugin: PluginContext, arr: Arr) -> None:
    fetched = await arr.health(ttl=HEALTH_INTERVAL)
    summary = {"warnings": len(fetched.value)} if fetched.value is not None else {}
    await announce(plugin, HEALTH_TOPIC, arr, fetched, summary, HEALTH_INTERVAL)


def _fingerprint(fetched: Fetched[Any]) -> str:
    error = str(fetched.error) if fetched.error is not None else ""
    return hashlib.sha256(f"{error}\n{fetched.value!r}".encode()).hexdigest()


async def announce(
    plugin: PluginContext,
    topic: str,
    arr: Arr,
    fetched: Fetched[Any],
    summary: Mapping[str, Any],
    interval: float,
) -> None:
    """Publish ``topic`` when what the instance's widget shows has changed since the last
    announcement (remembered in the shared cache, so that several processes announce a change
    once)."""
    mark = _fingerprint(fetched)
    key = f"arr:announced:{topic}:{arr.kind}:{arr.name}"
    if await plugin.cache.get(key) == mark:
        return
    await plugin.cache.set(key, mark, max(60.0, interval * 3))
    if fetched.error is not None:
        plugin.log.warning("%s (%s): %s", topic, arr.name, fetched.error)
    await plugin.publish(
        topic,
        "updated",
        {"instance": arr.name, "kind": arr.kind, "ok": fetched.error is None, **summary},
    )
