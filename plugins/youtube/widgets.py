"""The dashboard widget: the viewer's latest downloads with their progress."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from medianest import PluginContext, current_user

from . import store
from .routes import _out
from .settings import Settings

SHOWN = 5


async def load_status(plugin: PluginContext, request: web.Request) -> dict[str, Any]:
    settings: Settings = plugin.settings
    user = current_user(request)
    if not settings.library_path or user is None:
        return {"configured": bool(settings.library_path), "signed_in": user is not None}
    rows = await store.of_user(plugin, user.id, limit=SHOWN)
    return {
        "configured": True,
        "signed_in": True,
        "downloads": [_out(r) for r in rows],
        "active": sum(1 for r in rows if r["status"] in store.ACTIVE),
    }
