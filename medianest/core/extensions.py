"""The things a plugin contributes through the hooks, and the context it is handed.

Plugins import these from ``medianest`` (the top package), never from here directly.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .cache import Cache


async def resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable; hooks may return plain values or coroutines."""
    while inspect.isawaitable(value):
        value = await value
    return value


def call_with(func: Callable[..., Any], **available: Any) -> Any:
    """Call ``func`` with just the keyword arguments it declares, out of ``available``.

    This is how plugin callbacks (and hook implementations) may take fewer arguments than
    MediaNest offers, so new arguments never break existing plugins.
    """
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return func(**available)
    return func(**{name: available[name] for name in params if name in available})


Publisher = Callable[[str, str, Mapping[str, Any]], Awaitable[None]]


@dataclass
class PluginContext:
    """What a plugin is handed when MediaNest calls it: its name, settings and core services.

    ``settings`` is the plugin's settings model filled from what the admin saved (or a plain
    dict when the plugin declares no model).
    """

    name: str
    settings: Any
    cache: Cache
    db: AsyncEngine
    _publish: Publisher = field(repr=False)
    log: logging.Logger = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.log = logging.getLogger(f"medianest.plugins.{self.name}")

    async def publish(self, topic: str, event: str, data: Mapping[str, Any]) -> None:
        """Send ``event`` with ``data`` to every websocket client subscribed to ``topic``."""
        await self._publish(topic, event, data)


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """An HTTP route. The handler takes ``request`` and, by name, any of ``body`` (an
    instance of the ``body`` model), ``query`` (of the ``query`` model) and ``plugin``
    (its :class:`PluginContext`). It returns a pydantic model, a dict or list (sent as
    JSON), or an aiohttp response. Models declared here are validated and published in
    the OpenAPI document.
    """

    method: str
    path: str
    handler: Handler
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    summary: str = ""
    name: str | None = None
    # Pages and fragments are left out of the OpenAPI document.
    include_in_schema: bool = True


@dataclass(frozen=True)
class Widget:
    """A dashboard tile. ``load`` returns the data ``template`` is rendered with (as ``data``);
    it may take ``plugin`` and ``request``. An event on ``topic`` makes open dashboards
    reload the tile.
    """

    name: str
    title: str
    template: str
    load: Callable[..., Awaitable[Any]]
    topic: str | None = None


@dataclass(frozen=True)
class Poller:
    """Background work run every ``interval`` seconds while the plugin is active; ``run``
    takes ``plugin``."""

    name: str
    interval: float
    run: Callable[..., Awaitable[None]]


HealthStatus = Literal["ok", "degraded", "down", "unconfigured"]


@dataclass(frozen=True)
class HealthResult:
    """The state of one thing a plugin talks to (a service instance, usually)."""

    name: str
    status: HealthStatus
    message: str = ""
    latency_ms: float | None = None
    version: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """One answer to a media search."""

    source: str
    media_type: Literal["movie", "tv", "video", "other"]
    title: str
    year: int | None = None
    overview: str = ""
    poster_url: str | None = None
    ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestInfo:
    """What a fulfilment plugin is told about an approved request."""

    id: str
    media_type: str
    title: str
    ids: Mapping[str, str]
    details: Mapping[str, Any]


@dataclass(frozen=True)
class FulfilmentResult:
    """How a fulfilment went: ``ok``, a message for people, and the service's own id."""

    ok: bool
    message: str = ""
    external_id: str | None = None


@dataclass(frozen=True)
class Event:
    """Something that happened in MediaNest, e.g. ``plugin.enabled`` or ``request.created``."""

    name: str
    data: Mapping[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class NavItem:
    """A link in the navigation bar."""

    label: str
    href: str


Json = dict[str, Any] | list[Any]
ResponseLike = web.StreamResponse | BaseModel | Json
