"""Typed keys of what the request workflow puts in the application."""

from __future__ import annotations

from aiohttp import web

from .desk import RequestDesk
from .notifications import Notifier

NOTIFIER = web.AppKey("notifier", Notifier)
REQUESTS = web.AppKey("requests", RequestDesk)
