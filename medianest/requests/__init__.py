"""The request workflow: what people ask for and what becomes of it.

Its tables (``models``), the state machine and its queries (``workflow``), the desk that hands
approved requests to the plugins and follows them until they are available (``desk``), the
notifications people are sent (``notifications``), and its pages and API (``views``).

It is a component of the kernel rather than a plugin: it is what MediaNest is for, it has no
service of its own to switch off, and the services it works through are the plugins (search,
lookup, fulfilment and availability all come through their hooks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..core.app import Component
from ..core.auth import CurrentUser
from ..core.extensions import NavItem
from ..core.keys import CACHE, ENGINE, HUB, PERMISSIONS_CHANGED, REGISTRY, SETTINGS
from ..web import add_nav, add_page_vars
from .desk import REQUESTS_TOPIC, RequestDesk
from .keys import NOTIFIER, REQUESTS
from .notifications import ME_TOPIC, Notifier
from .views import REQUEST_ROUTES


async def _unread(request: web.Request, user: CurrentUser) -> dict[str, Any]:
    return {"unread": await request.app[NOTIFIER].unread(user.id)}


def _setup(app: web.Application) -> None:
    add_nav(app, 10, NavItem("Search", "/search"))
    add_nav(app, 20, NavItem("Requests", "/requests"))
    add_page_vars(app, _unread)


async def _desk(app: web.Application) -> AsyncIterator[None]:
    notifier = Notifier(app[ENGINE], app[HUB], app[REGISTRY], app[CACHE])
    desk = RequestDesk(app[ENGINE], app[SETTINGS], app[REGISTRY], app[HUB], notifier, app[CACHE])
    app[NOTIFIER], app[REQUESTS] = notifier, desk
    app[PERMISSIONS_CHANGED].append(notifier.forget_managers)
    desk.start()
    yield
    await desk.close()
    await notifier.close()


COMPONENT = Component(
    name="requests",
    routes=REQUEST_ROUTES,
    topics=frozenset({ME_TOPIC, REQUESTS_TOPIC}),
    setup=_setup,
    late=[_desk],
)
