"""Background refreshes of every instance's data, shared by every viewer.

One coordinator per widget reads the widget's call for each instance every interval (a
setting), with the cache TTL equal to the interval, so however many people watch and however
many MediaNest processes run, each instance is asked once per interval. When what an instance's
panel shows has changed, the coordinator announces it on the widget's topic (naming the
instance, once across processes) and open dashboards re-render. Each instance backs off on its
own while it fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medianest import Coordinator, Fetched, PluginContext

from .client import Arr, Disk, HealthCheck, Queue, Upcoming, Wanted, instances

QUEUE_TOPIC = "arr.queue"
UPCOMING_TOPIC = "arr.upcoming"
WANTED_TOPIC = "arr.wanted"
DISK_TOPIC = "arr.disk"
HEALTH_TOPIC = "arr.health"
TOPICS = [QUEUE_TOPIC, UPCOMING_TOPIC, WANTED_TOPIC, DISK_TOPIC, HEALTH_TOPIC]


def _about(arr: Arr) -> Mapping[str, Any]:
    return {"instance": arr.name, "kind": arr.kind}


async def read_queue(member: Arr, interval: float) -> Fetched[Queue]:
    return await member.queue(ttl=interval)


async def read_upcoming(member: Arr, interval: float) -> Fetched[tuple[Upcoming, ...]]:
    return await member.upcoming(ttl=interval)


async def read_wanted(member: Arr, interval: float) -> Fetched[Wanted]:
    return await member.wanted(ttl=interval)


async def read_disk(member: Arr, interval: float) -> Fetched[tuple[Disk, ...]]:
    return await member.disks(ttl=interval)


async def read_health(member: Arr, interval: float) -> Fetched[tuple[HealthCheck, ...]]:
    return await member.health(ttl=interval)


def _queued(fetched: Fetched[Queue]) -> dict[str, Any]:
    return {"count": fetched.value.total_records} if fetched.value is not None else {}


def _listed(fetched: Fetched[tuple[Upcoming, ...]]) -> dict[str, Any]:
    return {"count": len(fetched.value)} if fetched.value is not None else {}


def _missing(fetched: Fetched[Wanted]) -> dict[str, Any]:
    return {"missing": fetched.value.missing} if fetched.value is not None else {}


def _warnings(fetched: Fetched[tuple[HealthCheck, ...]]) -> dict[str, Any]:
    return {"warnings": len(fetched.value)} if fetched.value is not None else {}


QUEUE: Coordinator[Fetched[Queue]] = Coordinator(
    "queue",
    read_queue,
    interval=lambda settings: settings.queue_interval,
    topic=QUEUE_TOPIC,
    each=instances,
    about=_about,
    summary=_queued,
)
UPCOMING: Coordinator[Fetched[tuple[Upcoming, ...]]] = Coordinator(
    "upcoming",
    read_upcoming,
    interval=lambda settings: settings.upcoming_interval,
    topic=UPCOMING_TOPIC,
    each=instances,
    about=_about,
    summary=_listed,
)
WANTED: Coordinator[Fetched[Wanted]] = Coordinator(
    "wanted",
    read_wanted,
    interval=lambda settings: settings.wanted_interval,
    topic=WANTED_TOPIC,
    each=instances,
    about=_about,
    summary=_missing,
)
DISK: Coordinator[Fetched[tuple[Disk, ...]]] = Coordinator(
    "disk",
    read_disk,
    interval=lambda settings: settings.disk_interval,
    topic=DISK_TOPIC,
    each=instances,
    about=_about,
)
HEALTH: Coordinator[Fetched[tuple[HealthCheck, ...]]] = Coordinator(
    "health",
    read_health,
    interval=lambda settings: settings.health_interval,
    topic=HEALTH_TOPIC,
    each=instances,
    about=_about,
    summary=_warnings,
)


async def refresh_queue(plugin: PluginContext, arr: Arr, *, force: bool = False) -> None:
    """Read the instance's queue again now (``force``: from the instance, not the cache) and
    announce what changed."""
    if force:
        await arr.forget_queue()
    await QUEUE.refresh_now(plugin, arr)


async def refresh_wanted(plugin: PluginContext, arr: Arr, *, force: bool = False) -> None:
    if force:
        await arr.forget_wanted()
    await WANTED.refresh_now(plugin, arr)
