"""Typed keys of everything the application object holds; declared once, here."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from .bus import Bus
from .cache import Cache
from .plugins import PluginRegistry
from .settings import Settings
from .ws import WebSocketHub

SETTINGS = web.AppKey("settings", Settings)
SECRET_KEY = web.AppKey("secret_key", str)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS = web.AppKey("redis", Redis)
CACHE = web.AppKey("cache", Cache)
BUS = web.AppKey("bus", Bus)
HUB = web.AppKey("hub", WebSocketHub)
REGISTRY = web.AppKey("registry", PluginRegistry)
