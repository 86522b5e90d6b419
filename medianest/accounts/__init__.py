"""Accounts: signing in and out (local passwords, and the sign-in providers plugins offer),
the first admin's set-up, a person's own account page (sessions, API tokens), the users admin
and the audit log.

The kernel owns what accounts are made of (users, sessions, tokens, permissions:
``medianest.core.auth``); this package owns the pages and API people use them through. It is a
component rather than a plugin: nobody could sign in to switch it back on.
"""

from __future__ import annotations

from aiohttp import web

from ..core.app import Component
from ..core.auth import Permission
from ..core.extensions import NavItem
from ..web import add_nav
from .signin import AUTH_ROUTES
from .views import ACCOUNT_ROUTES


def _setup(app: web.Application) -> None:
    add_nav(app, 40, NavItem("Users", "/admin/users", Permission.MANAGE_USERS))
    add_nav(app, 50, NavItem("Audit log", "/admin/audit", Permission.MANAGE_USERS))
    add_nav(app, 90, NavItem("Account", "/account"))


COMPONENT = Component(name="accounts", routes=[*AUTH_ROUTES, *ACCOUNT_ROUTES], setup=_setup)
