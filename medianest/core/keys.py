"""Typed keys of everything the application and its requests hold; declared once, here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .auth import ApiTokens, CurrentUser, Sessions
from .bus import Bus
from .cache import Cache
from .crypto import SecretBox
from .dashboard import WidgetBoard
from .fulfilment import RequestDesk
from .notifications import Notifier
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
BOARD = web.AppKey("board", WidgetBoard)
REGISTRY = web.AppKey("registry", PluginRegistry)
SESSIONS = web.AppKey("sessions", Sessions)
TOKENS = web.AppKey("tokens", ApiTokens)
LIMITS = web.AppKey("limits", RateLimits)
PROXIES = web.AppKey("proxies", TrustedProxies)
INSTALLATION_ID = web.AppKey("installation_id", str)
NOTIFIER = web.AppKey("notifier", Notifier)
REQUESTS = web.AppKey("requests", RequestDesk)

# Per request: who is asking, from where, and over what.
USER = web.RequestKey("user", CurrentUser)
CLIENT_ADDRESS = web.RequestKey("client_address", str)
HTTPS = web.RequestKey("https", bool)
