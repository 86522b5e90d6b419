"""MediaNest's application: the kernel with MediaNest's own components, in order.

The order is the order of their routes and of their start-up (the web shell first: the others
add their links to its navigation).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from aiohttp import web

from . import accounts, ops, requests
from . import web as shell
from .core import app as kernel
from .core.settings import Settings

COMPONENTS = (shell.COMPONENT, accounts.COMPONENT, requests.COMPONENT, ops.COMPONENT)


async def create_app(
    settings: Settings, *, extra_plugins: Iterable[tuple[str, ModuleType | object]] = ()
) -> web.Application:
    """Build MediaNest for ``settings``.

    ``extra_plugins`` registers plugin objects that are not installed as packages (tests).
    """
    return await kernel.create_app(settings, COMPONENTS, extra_plugins=extra_plugins)
