"""Typed keys of what the web shell puts in the application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..core.auth import CurrentUser
from ..core.extensions import NavItem
from .dashboard import WidgetBoard

BOARD = web.AppKey("board", WidgetBoard)
# The navigation bar's links, each with its place (lower first): the shell's and the domains'.
NAV: web.AppKey[list[tuple[int, NavItem]]] = web.AppKey("nav")
# What the domains add to every page's template context for a signed-in user (the unread
# count of the bell, say).
PageVars = Callable[[web.Request, CurrentUser], Awaitable[dict[str, Any]]]
PAGE_VARS: web.AppKey[list[PageVars]] = web.AppKey("page_vars")
