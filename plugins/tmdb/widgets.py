"""The dashboard's TMDB widget: what is trending this week."""

from __future__ import annotations

from medianest import ApiModel, Fetched, PluginContext

from . import pollers
from .client import Title

SHOWN = 6


class Shelf(ApiModel):
    """A row of posters."""

    configured: bool = True
    titles: list[Title] = []


async def load_trending(plugin: PluginContext) -> Fetched[Shelf] | Shelf:
    # The coordinator keeps this list fresh; a widget never waits out a rate limit.
    lists = await pollers.DISCOVERY.latest(plugin)
    if lists is None:
        return Shelf(configured=False)
    got = lists["trending"]
    shelf = None if got.value is None else Shelf(titles=got.value[:SHOWN])
    return Fetched(shelf, got.fetched_at, got.error)
