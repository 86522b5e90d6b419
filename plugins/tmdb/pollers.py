"""The discovery poller: TMDB's lists refreshed once per interval for every viewer."""

from __future__ import annotations

import hashlib
import json
from typing import Any, get_args

from medianest import PluginContext

from .client import TMDB, ListName

TOPIC = "tmdb.discover"
# Seconds between refreshes; also how long the lists are cached, so that however many people
# look (and however many MediaNest processes serve them), TMDB is asked once per interval.
INTERVAL = 30 * 60.0
LISTS: tuple[ListName, ...] = get_args(ListName)


async def refresh_discovery(plugin: PluginContext) -> None:
    """Fetch every list; tell open pages when what they show has changed."""
    tmdb = TMDB(plugin)
    if not tmdb.configured:
        return
    state: dict[str, Any] = {}
    for name in LISTS:
        got = await tmdb.titles(name, ttl=INTERVAL)
        state[name] = {
            "titles": None if got.value is None else [t.model_dump() for t in got.value],
            "error": None if got.error is None else str(got.error),
        }
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    if plugin.state.get("discovery") == digest:
        return
    plugin.state["discovery"] = digest
    await plugin.publish(
        TOPIC,
        "updated",
        {
            "lists": list(LISTS),
            "ok": all(s["error"] is None for s in state.values()),
        },
    )
