"""Typed keys of what the kernel puts in the application and its requests; declared once, here.

The domain packages declare their own keys beside their code (``medianest.requests.keys``,
``medianest.web.keys``): the kernel knows none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .auth import ApiTokens, CurrentUser, Sessions
from .bus import Bus
from .cache import Cache
from .crypto import SecretBox
from .extensions import Route
from .plugins import PluginRegistry
from .security import RateLimits, TrustedProxies
from .settings import Settings
from .ws import WebSocketHub

if TYPE_CHECKING:
    from redis.asyncio import Redis  # imported only when Redis is configured

SETTINGS = web.AppKey("settings", Settings)
BOX = web.AppKey("box", SecretBox)
ENGINE = web.AppKey("engine", AsyncEngine)
REDIS: web.AppKey[Redis] = web.AppKey("redis")
CACHE = web.AppKey("cache", Cache)
BUS = web.AppKey("bus", Bus)
HUB = web.AppKey("hub", WebSocketHub)
REGISTRY = web.AppKey("registry", PluginRegistry)
SESSIONS = web.AppKey("sessions", Sessions)
TOKENS = web.AppKey("tokens", ApiTokens)
LIMITS = web.AppKey("limits", RateLimits)
PROXIES = web.AppKey("proxies", TrustedProxies)
INSTALLATION_ID = web.AppKey("installation_id", str)
# The routes of MediaNest's own domains (not the plugins'), in the order they were added; the
# OpenAPI document describes them.
ROUTES: web.AppKey[list[Route]] = web.AppKey("routes")
# Told when a user's role or permissions change (the users admin, the first admin's set-up), so
# that what was worked out from them (who is told of new requests, say) is worked out again.
PERMISSIONS_CHANGED: web.AppKey[list[Callable[[], Awaitable[None]]]] = web.AppKey(
    "permissions_changed"
)

# Per request: who is asking, from where, and over what.
USER = web.RequestKey("user", CurrentUser)
CLIENT_ADDRESS = web.RequestKey("client_address", str)
HTTPS = web.RequestKey("https", bool)
