"""Operations: readiness and metrics, the system page, backup and restore, and the rotation of
the key that encrypts secrets at rest.

A component rather than a plugin: an installation that could switch off its own backups or its
readiness check would be one nobody could run. The commands of ``medianest`` (``backup``,
``restore``, ``rotate-key``) use ``backup`` and ``rotation`` without a running server.
"""

from __future__ import annotations

from aiohttp import web

from ..core.app import Component
from ..core.auth import Permission
from ..core.extensions import NavItem
from ..web import add_nav
from .views import OPS_ROUTES


def _setup(app: web.Application) -> None:
    add_nav(app, 60, NavItem("System", "/admin/system", Permission.MANAGE_SETTINGS))


COMPONENT = Component(name="ops", routes=OPS_ROUTES, setup=_setup)
