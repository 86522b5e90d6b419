"""The kernel's application factory.

Resources are opened in ``cleanup_ctx`` in dependency order (database, Redis and cache, bus,
the components' early contexts, websockets, plugins, the components' late contexts) so that
what failed to open is not closed, and everything opened is closed in reverse at shutdown.
The kernel names none of MediaNest's domains: they arrive as :class:`Component` objects
(``medianest.app`` lists them), the services as plugins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import cast

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from . import db
from .api import add_routes
from .auth import ApiTokens, SessionPolicy, Sessions
from .bus import Bus, RedisBus
from .cache import MemoryCache, RedisCache
from .crypto import SecretBox
from .extensions import Route
from .jobs import job_queue
from .keys import (
    BOX,
    BUS,
    CACHE,
    ENGINE,
    HUB,
    INSTALLATION_ID,
    LIMITS,
    PERMISSIONS_CHANGED,
    PROXIES,
    REDIS,
    REGISTRY,
    ROUTES,
    SESSIONS,
    SETTINGS,
    TOKENS,
)
from .middleware import core_middleware, on_response_prepare
from .plugins import PluginRegistry
from .security import RateLimits, TrustedProxies
from .settings import Settings, load_keyring
from .ws import ACCESS_CHANNEL, WebSocketHub

log = logging.getLogger(__name__)

# The kernel's own websocket topic; the components and plugins add theirs.
KERNEL_TOPICS = frozenset({"plugins"})

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@dataclass(frozen=True)
class Component:
    """One of MediaNest's own domains (the web shell, accounts, requests, operations), as the
    kernel sees it: what it adds to the application, and nothing the kernel has to name.

    ``early`` contexts open once the database, cache and bus are, before the websocket hub and
    the plugins; ``late`` ones once the plugins are active. Both close in reverse order.
    ``setup`` runs while the application is built (to put the component's keys in it).
    """

    name: str
    routes: Sequence[Route] = ()
    topics: frozenset[str] = frozenset()
    template_dirs: Sequence[Path] = ()
    middlewares: Sequence[Middleware] = ()
    setup: Callable[[web.Application], None] | None = None
    early: Sequence[CleanupContext] = ()
    late: Sequence[CleanupContext] = ()


async def create_app(
    settings: Settings,
    components: Sequence[Component] = (),
    *,
    extra_plugins: Iterable[tuple[str, ModuleType | object]] = (),
) -> web.Application:
    """Build the kernel's application for ``settings``, with ``components`` added in order.

    ``medianest.app.create_app`` is this with MediaNest's own components. ``extra_plugins``
    registers plugin objects that are not installed as packages (tests).
    """
    app = web.Application(
        middlewares=[core_middleware, *(m for c in components for m in c.middlewares)],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS] = settings
    app[PROXIES] = TrustedProxies(settings.trusted_proxies)
    app[PERMISSIONS_CHANGED] = []
    app.on_response_prepare.append(on_response_prepare)

    registry = PluginRegistry()
    registry.discover(extra_plugins)
    await registry.collect()
    app[REGISTRY] = registry

    _setup_templates(app, registry, [d for c in components for d in c.template_dirs])
    routes: list[Route] = [route for c in components for route in c.routes]
    app[ROUTES] = routes
    for component in components:
        if component.setup is not None:
            component.setup(app)
    add_routes(app.router, routes)
    for record in registry.records.values():
        add_routes(app.router, record.routes, record.name, registry.is_active, registry.context)

    topics = KERNEL_TOPICS.union(*(c.topics for c in components))
    app.cleanup_ctx.extend(
        [
            _database,
            _redis_and_cache,
            _accounts,
            *(ctx for c in components for ctx in c.early),
            _websockets(topics),
            _plugins,
            *(ctx for c in components for ctx in c.late),
        ]
    )
    # Websockets are closed when shutdown begins: the server waits for open handlers before
    # the cleanup contexts run, and a socket left open would hold shutdown up until timeout.
    app.on_shutdown.append(_close_websockets)
    return app


def _setup_templates(
    app: web.Application, registry: PluginRegistry, template_dirs: Sequence[Path]
) -> None:
    plugin_dirs = {
        record.name: jinja2.FileSystemLoader([str(d) for d in record.template_dirs])
        for record in registry.records.values()
        if record.template_dirs
    }
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader([str(d) for d in template_dirs]),
            jinja2.PrefixLoader(plugin_dirs),
        ]
    )
    aiohttp_jinja2.setup(
        app,
        loader=loader,
        autoescape=jinja2.select_autoescape(default=True),
        # Templates only read what the handler gathered; rendering them synchronously costs
        # half what Jinja's async mode does.
        enable_async=False,
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Re-read when another process rotated the key; a key file deleted meanwhile is not
    # replaced by a new key (the keys in memory go on working until it is restored).
    app[BOX] = SecretBox(
        load_keyring(settings), reload=lambda: load_keyring(settings, create=False)
    )
    engine = db.create_engine(settings)
    try:
        # The plugins' own tables too: a plugin whose tables are behind is not started.
        await db.check_schema(engine, app[REGISTRY].branches())
        app[INSTALLATION_ID] = await db.installation_id(engine)
    except BaseException:
        await engine.dispose()
        raise
    app[ENGINE] = engine
    # In the background: on a large database it takes a moment, and nothing waits for it.
    statistics = asyncio.create_task(db.keep_statistics(engine))
    yield
    statistics.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await statistics
    await engine.dispose()


async def _redis_and_cache(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.redis_url is None:
        app[CACHE] = MemoryCache()
        app[BUS] = Bus()
        yield
        return
    from redis.asyncio import Redis  # only with Redis configured: the default has no use for it

    redis = Redis.from_url(settings.redis_url)
    try:
        await cast(Awaitable[bool], redis.ping())
    except Exception:
        await redis.aclose()
        raise
    app[REDIS] = redis
    app[CACHE] = RedisCache(redis)
    bus = RedisBus(redis)
    await bus.start()
    app[BUS] = bus
    yield
    await bus.close()
    await redis.aclose()


async def _accounts(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    policy = SessionPolicy(
        idle=timedelta(days=settings.session_idle_days),
        absolute=timedelta(days=settings.session_max_days),
    )
    bus = app[BUS]
    app[SESSIONS] = Sessions(
        app[ENGINE],
        app[CACHE],
        policy,
        notify=lambda message: bus.publish(ACCESS_CHANNEL, message),
    )
    app[TOKENS] = ApiTokens(app[ENGINE], app[CACHE])
    app[LIMITS] = RateLimits(
        settings.redis_url, sign_in=settings.rate_limit_sign_in, api=settings.rate_limit_api
    )
    yield


def _websockets(topics: frozenset[str]) -> CleanupContext:
    async def websockets(app: web.Application) -> AsyncIterator[None]:
        registry = app[REGISTRY]

        def topic_allowed(topic: str) -> bool:
            if topic in topics:
                return True
            owner = registry.topic_owner(topic)
            return owner is not None and registry.is_active(owner)

        hub = WebSocketHub(app[BUS], app[SETTINGS].ws_queue_size, topic_allowed)
        app[HUB] = hub
        yield
        await hub.close()

    return websockets


async def _close_websockets(app: web.Application) -> None:
    hub = app.get(HUB)
    if hub is not None:
        await hub.close()


async def _plugins(app: web.Application) -> AsyncIterator[None]:
    registry = app[REGISTRY]
    hub = app[HUB]
    settings = app[SETTINGS]
    # With Redis, `medianest worker` processes run the jobs; without, this process does.
    jobs = job_queue(settings.redis_url, settings.jobs_concurrency, settings.jobs_sweep_interval)
    registry.jobs = jobs
    registry.bind(
        app[ENGINE],
        app[CACHE],
        app[BUS],
        hub.publish,
        on_change=lambda summary: hub.deliver_local("plugins", "changed", summary),
        installation_id=app[INSTALLATION_ID],
        box=app[BOX],
    )
    await registry.load_states()
    yield
    await registry.close()
    await jobs.close()
