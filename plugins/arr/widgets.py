"""The Sonarr & Radarr widgets' loaders: one panel per instance in each widget.

They show what the coordinators read last from each instance, so viewers add no upstream calls.
Each instance degrades on its own: a Radarr 4K that is down shows its last good data with its
age, or why it is unavailable, next to a Radarr that answers.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from medianest import Coordinator, Fetched, PluginContext

from . import pollers
from .client import Disk, HealthCheck, Queue, Upcoming, Wanted, instances

T = TypeVar("T")


class Panel(BaseModel, Generic[T]):
    """What one instance contributes to a widget."""

    model_config = ConfigDict(frozen=True)

    instance: str
    kind: str
    value: T | None = None
    fetched_at: datetime | None = None
    # Why the data is missing or not fresh, in words ("Radarr 4K is unreachable since 10:42;
    # showing data from 10:40."); "" when it is fresh.
    problem: str = ""


class Board(BaseModel, Generic[T]):
    """A widget's data: a panel per configured instance."""

    model_config = ConfigDict(frozen=True)

    configured: bool = True
    panels: tuple[Panel[T], ...] = ()


async def _board(plugin: PluginContext, coordinator: Coordinator[Fetched[T]]) -> Board[T]:
    arrs = instances(plugin)
    if not arrs:
        return Board(configured=False)
    got = await asyncio.gather(*(coordinator.latest(plugin, arr) for arr in arrs))
    return Board(
        panels=tuple(
            Panel[Any](
                instance=arr.name,
                kind=arr.kind,
                value=fetched.value,
                fetched_at=fetched.fetched_at,
                problem=fetched.describe(),
            )
            for arr, fetched in zip(arrs, got, strict=True)
        )
    )


async def load_queue(plugin: PluginContext) -> Board[Queue]:
    """Downloads under way, with their progress and time left."""
    return await _board(plugin, pollers.QUEUE)


async def load_upcoming(plugin: PluginContext) -> Board[tuple[Upcoming, ...]]:
    """Episodes airing and films released in the next days."""
    return await _board(plugin, pollers.UPCOMING)


async def load_wanted(plugin: PluginContext) -> Board[Wanted]:
    """How many monitored episodes and films are missing."""
    return await _board(plugin, pollers.WANTED)


async def load_disk(plugin: PluginContext) -> Board[tuple[Disk, ...]]:
    """Free space on each instance's disks."""
    return await _board(plugin, pollers.DISK)


async def load_health(plugin: PluginContext) -> Board[tuple[HealthCheck, ...]]:
    """Each instance's own health warnings."""
    return await _board(plugin, pollers.HEALTH)
