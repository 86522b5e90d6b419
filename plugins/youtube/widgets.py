"""The dashboard widget: the viewer's latest downloads with their progress."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from medianest import PluginContext, current_user

from . import store
from .routes import Download, _out
from .settings import Settings

SHOWN = 5
# The widget of one user, kept until any download changes (or this long, at most).
CACHE_TTL = 300.0


async def load_status(plugin: PluginContext, request: web.Request) -> dict[str, Any]:
    settings: Settings = plugin.settings
    user = current_user(request)
    if not settings.library_path or user is None:
        return {"configured": bool(settings.library_path), "signed_in": user is not None}
    user_id = user.id

    async def latest() -> dict[str, Any]:
        rows = await store.of_user(plugin, user_id, limit=SHOWN)
        return {
            "configured": True,
            "signed_in": True,
            "downloads": [_out(r).model_dump(mode="json") for r in rows],
            "active": sum(1 for r in rows if r["status"] in store.ACTIVE),
        }

    # Every dashboard view shows it: from the cache, not a query, while no download changed.
    key = f"youtube:widget:{await store.generation(plugin)}:{user_id}"
    cached: dict[str, Any] = await plugin.cache.get_or_compute(key, CACHE_TTL, latest)
    # Models again, not dicts: the template reads `d.items`, which on a dict is its method.
    return cached | {"downloads": [Download.model_validate(d) for d in cached["downloads"]]}
