"""The dashboard's TMDB widget: what is trending this week."""

from __future__ import annotations

from medianest import ApiModel, Fetched, PluginContext

from . import pollers
from .client import TMDB, Title

SHOWN = 6


class Shelf(ApiModel):
    """A row of posters."""

    configured: bool = True
    titles: list[Title] = []


async def load_trending(plugin: PluginContext) -> Fetched[Shelf] | Shelf:
    tmdb = TMDB(plugin)
    if not tmdb.configured:
        return Shelf(configured=False)
    # The poller keeps this list fresh; a widget never waits out a rate limit.
    got = await tmdb.titles("trending", ttl=pollers.INTERVAL, wait=False)
    shelf = None if got.value is None else Shelf(titles=got.value[:SHOWN])
    return Fetched(shelf, got.fetched_at, got.error)
