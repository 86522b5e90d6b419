"""The web shell: the pages every other part renders into (base layout, error pages, the
dashboard and its widgets, the integrations admin), the templates and static files, and each
page's context (navigation, what the domains add).

It is a component of the kernel rather than a plugin: there is no MediaNest without its pages,
and an admin cannot switch it off. The other domains add their links and page variables
through :func:`add_nav` and :func:`add_page_vars` while the application is built.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
from aiohttp import web

from .. import __version__
from ..core.app import Component
from ..core.extensions import NavItem
from ..core.keys import BUS, HUB, REGISTRY, SETTINGS
from ..core.ws import BUS_CHANNEL as WS_CHANNEL
from . import views
from .dashboard import WidgetBoard
from .keys import BOARD, NAV, PAGE_VARS, PageVars

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"


def add_nav(app: web.Application, place: int, item: NavItem) -> None:
    """Put ``item`` in the navigation bar at ``place`` (lower first; the dashboard is 0)."""
    app[NAV].append((place, item))
    app[NAV].sort(key=lambda entry: entry[0])


def add_page_vars(app: web.Application, contribute: PageVars) -> None:
    """Add what ``contribute`` returns to every page's context for a signed-in user."""
    app[PAGE_VARS].append(contribute)


def _setup(app: web.Application) -> None:
    app[NAV] = []
    app[PAGE_VARS] = []
    for place, item in views.SHELL_NAV:
        add_nav(app, place, item)
    app.router.add_static("/static", STATIC_DIR, name="static")
    aiohttp_jinja2.get_env(app).globals["version"] = __version__


async def _board(app: web.Application) -> AsyncIterator[None]:
    # The board hears a widget's announcement before the hub passes it on to the dashboards
    # that will reload the tile (it subscribes first), so that the view they ask for is
    # already being computed.
    board = WidgetBoard(app[REGISTRY], app[SETTINGS].widget_timeout)
    app[BUS].subscribe(WS_CHANNEL, board.on_bus_message)
    app[BOARD] = board
    board.republish = lambda topic: app[HUB].deliver_local(topic, "updated", {"ok": True})
    yield
    await board.close()


COMPONENT = Component(
    name="web",
    routes=views.SHELL_ROUTES,
    template_dirs=[TEMPLATES_DIR],
    middlewares=[views.page_context_middleware],
    setup=_setup,
    early=[_board],
)
