"""The discovery coordinator: TMDB's lists refreshed once per interval for every viewer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from medianest import Coordinator, Fetched, PluginContext

from .client import TMDB, ListName, Title

TOPIC = "tmdb.discover"
LISTS: tuple[ListName, ...] = get_args(ListName)

# Each list as last read: the titles, or the last good ones with the error that stopped a refresh.
Discovery = Mapping[ListName, Fetched[list[Title]]]


async def read_lists(plugin: PluginContext, interval: float) -> Discovery | None:
    """Every list, cached for the interval, so that however many people look (and however many
    MediaNest processes serve them), TMDB is asked once per interval."""
    tmdb = TMDB(plugin)
    if not tmdb.configured:
        return None
    return {name: await tmdb.titles(name, ttl=interval) for name in LISTS}


def _summary(lists: Discovery | None) -> dict[str, Any]:
    shown = lists or {}
    return {"lists": list(LISTS), "ok": all(got.error is None for got in shown.values())}


DISCOVERY: Coordinator[Discovery | None] = Coordinator(
    "discovery",
    read_lists,
    interval=lambda settings: settings.discovery_interval,
    topic=TOPIC,
    summary=_summary,
)
