"""The things a plugin contributes through the hooks, and the context it is handed.

Plugins import these from ``medianest`` (the top package), never from here directly.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from aiohttp import web
from pydantic import BaseModel

from .http import ServiceClient, ServiceConfig, close_all

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .cache import Cache
    from .coordinator import Coordinator
    from .jobs import JobQueue


async def resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable; hooks may return plain values or coroutines."""
    while inspect.isawaitable(value):
        value = await value
    return value


def call_with(func: Callable[..., Any], **available: Any) -> Any:
    """Call ``func`` with just the keyword arguments it declares, out of ``available``.

    This is how plugin callbacks (route handlers, widget loaders, pollers) may take fewer
    arguments than MediaNest offers, so new arguments never break existing plugins. Hook
    implementations get the same from pluggy, which reads what each one takes at registration.
    """
    names = parameters(func)
    if names is None:
        return func(**available)
    return func(**{name: available[name] for name in names if name in available})


def parameters(func: Callable[..., Any]) -> tuple[str, ...] | None:
    """The keyword arguments ``func`` declares, or ``None`` when it takes any (``**kwargs``)."""
    try:
        return _parameters(func)
    except TypeError:  # an unhashable callable: read its signature each time
        return _parameters.__wrapped__(func)


@functools.lru_cache(maxsize=4096)
def _parameters(func: Callable[..., Any]) -> tuple[str, ...] | None:
    # Widgets and hooks are called on every page view; reading a signature costs more than
    # most of them do.
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(params)


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
    # This installation's stable identifier (e.g. Plex's ``X-Plex-Client-Identifier``).
    installation_id: str = ""
    # What the plugin keeps while it is active (HTTP clients, say); each activation starts empty.
    state: dict[str, Any] = field(default_factory=dict, repr=False)
    # The installation's job queue for long work: in Redis for `medianest worker` processes,
    # or in this process (see medianest.core.jobs); None where no jobs run (the command line).
    jobs: JobQueue | None = field(default=None, repr=False)
    # Set by the registry: calls a hook on the other enabled plugins, and reads the stored
    # secret of a sign-in through one of this plugin's providers.
    _hook_caller: Callable[..., Awaitable[list[tuple[str, Any]]]] | None = field(
        default=None, repr=False
    )
    _secret_reader: Callable[..., Awaitable[str | None]] | None = field(default=None, repr=False)
    _media_listener: Callable[[str, Mapping[str, str]], Awaitable[None]] | None = field(
        default=None, repr=False
    )
    log: logging.Logger = field(init=False, repr=False)
    _clients: dict[str, ServiceClient] = field(default_factory=dict, init=False, repr=False)
    # What each coordinator knows in this activation (see medianest.core.coordinator).
    _coordinated: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.log = logging.getLogger(f"medianest.plugins.{self.name}")

    async def publish(self, topic: str, event: str, data: Mapping[str, Any]) -> None:
        """Send ``event`` with ``data`` to every websocket client subscribed to ``topic``."""
        await self._publish(topic, event, data)

    async def call_hook(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` (``refresh_library``, say) on every other enabled plugin, each on its
        own; returns ``(plugin name, answer)`` for each that answered something (a first-result
        hook: the first answer only). ``kwargs`` must be the hook's arguments: TypeError if not."""
        if self._hook_caller is None:
            return []
        return await self._hook_caller(hook, kwargs)

    async def sign_in_secret(self, provider: str, **details: Any) -> str | None:
        """The token kept from the latest sign-in through ``provider`` (one of this plugin's
        sign-in providers) whose identity details include ``details`` (``access="owner"``,
        say), decrypted; ``None`` when there is none."""
        if self._secret_reader is None:
            return None
        return await self._secret_reader(provider, details)

    async def media_changed(
        self, media_type: str = "", ids: Mapping[str, str] | None = None
    ) -> None:
        """Tell MediaNest that a film or series changed on a service (a download finished, a
        library scan found it), so the requests for it are checked now rather than at the next
        round. With no ids, every open request is checked."""
        if self._media_listener is not None:
            await self._media_listener(media_type, dict(ids or {}))

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str = "") -> asyncio.Task[Any]:
        """Run ``work`` in the background for as long as the plugin is active (a refresh after a
        webhook, a notice being retried): it is cancelled, and waited for, when the plugin is
        deactivated, and an exception it raises is logged once, to the plugin's log."""
        if self._stopped:
            work.close()
            raise RuntimeError(f"{self.name} is no longer active: nothing more runs for it")
        task = asyncio.get_running_loop().create_task(
            work, name=f"{self.name}:{name or getattr(work, '__qualname__', 'task')}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Nobody awaits these tasks: what went wrong is said here or nowhere.
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def stop_tasks(self, patience: float = 5.0) -> None:
        """Cancel what :meth:`spawn` started and wait for it (at most ``patience`` seconds);
        nothing can be spawned afterwards."""
        self._stopped = True
        tasks = list(self._tasks)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=patience)
        self.log.info("%d background task(s) stopped with the plugin", len(tasks) - len(pending))
        if pending:
            self.log.warning(
                "%d background task(s) did not stop within %g s: %s",
                len(pending),
                patience,
                ", ".join(sorted(t.get_name() for t in pending)),
            )

    def service_client(
        self,
        service: str,
        instance: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        label: str = "",
        **options: Any,
    ) -> ServiceClient:
        """The client for one service instance (timeouts, retries, breaker, cache, metrics).

        The same arguments give the same pooled client while the plugin is active; every
        client is closed when the plugin is deactivated. ``options`` are further
        :class:`~medianest.core.http.ServiceConfig` fields (``read_timeout``, ``retries``...).
        """
        config = ServiceConfig(
            service=service,
            instance=instance,
            base_url=base_url,
            headers=dict(headers or {}),
            params=dict(params or {}),
            label=label,
            **options,
        )
        key = repr(config)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = ServiceClient(config, self.cache)
        return client

    @asynccontextmanager
    async def trial_client(
        self,
        service: str,
        instance: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        label: str = "",
        **options: Any,
    ) -> AsyncIterator[ServiceClient]:
        """A client for settings not saved yet (in ``check_connection``): like
        :meth:`service_client`, but not pooled, not listed on the admin page, and closed when
        the ``async with`` block ends."""
        config = ServiceConfig(
            service=service,
            instance=instance,
            base_url=base_url,
            headers=dict(headers or {}),
            params=dict(params or {}),
            label=label,
            **options,
        )
        client = ServiceClient(config, self.cache)
        try:
            yield client
        finally:
            await client.close()

    def service_clients(self) -> list[ServiceClient]:
        """The clients this plugin has opened while active (for the admin's health view)."""
        return list(self._clients.values())

    async def close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await close_all(clients)


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
    # Who may call it: "public", "user" (anyone signed in) or a permission name. Closed by
    # default; "public" is for sign-in pages and receivers that check their own secret.
    access: str = "user"
    # State changes made with a session cookie must carry the page's CSRF token.
    csrf: bool = True


async def _no_loader(**_: Any) -> Any:
    raise LookupError("this widget has no loader: give it load= or coordinator=")


@dataclass(frozen=True)
class Widget:
    """A dashboard tile. ``load`` returns the data ``template`` is rendered with (as ``data``);
    it may take ``plugin`` and ``request``. An event on ``topic`` makes open dashboards
    reload the tile.

    A live widget names the :class:`~medianest.Coordinator` that feeds it: the widget then
    takes the coordinator's topic, the coordinator is run while the plugin is active (no
    poller or topic to register), and without a ``load`` of its own the tile shows what the
    coordinator read last (a ``Fetched``: its data, or why it is missing or not fresh).

    What ``load`` returns is computed once and shown to every viewer of the same
    ``audience``: ``"everyone"``, ``"role"`` (admins see one thing, other users another) or
    ``"user"`` (each their own). Left unset, it is ``"user"`` for a loader that takes
    ``request`` and ``"everyone"`` for one that does not. The template is given ``data`` and
    ``widget`` only: nothing of the viewer.
    """

    name: str
    title: str
    template: str
    load: Callable[..., Awaitable[Any]] = _no_loader
    topic: str | None = None
    audience: Literal["everyone", "role", "user"] | None = None
    coordinator: Coordinator[Any] | None = None


@dataclass(frozen=True)
class Poller:
    """Background work run every ``interval`` seconds while the plugin is active; ``run``
    takes ``plugin``. ``interval`` may be a function (taking ``plugin``) asked after each run
    how long to wait: for a pace set in the plugin's settings."""

    name: str
    interval: float | Callable[..., float]
    run: Callable[..., Awaitable[None]]
    # The Coordinator whose rounds this poller runs, if any (see Coordinator.poller).
    coordinator: Any = field(default=None, compare=False, repr=False)


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


class SeasonAvailability(NamedTuple):
    """How much of one season a media server holds: ``present`` episodes, of ``known`` ones
    (as far as the server knows; Plex knows only the episodes it has)."""

    present: int
    known: int


@dataclass(frozen=True)
class Availability:
    """Whether a film or a series is on a media server, and for a series which seasons.

    One answer per server: ``server_id`` and ``server_name`` say which. ``available`` is true
    when the film, or at least one episode of the series, is there. ``seasons`` maps season
    numbers to what is present. ``key`` is the server's own id of the item. ``service`` is
    what people call the service the server runs ("Plex"): pages say "Available in Plex"; left
    empty, they name the server (``server_name``).
    """

    source: str
    server_id: str
    server_name: str
    media_type: str
    available: bool
    seasons: Mapping[int, SeasonAvailability] = field(default_factory=dict)
    title: str | None = None
    year: int | None = None
    key: str | None = None
    checked_at: datetime | None = None
    service: str = ""

    @property
    def shown_as(self) -> str:
        """How pages name where it is: the service, or the server when it names none."""
        return self.service or self.server_name


class MediaNotFound(Exception):
    """Raised by a ``lookup_media`` implementation when the catalogue has no such film or
    series; the message says so in words. Unlike other exceptions it is not swallowed: it is
    the answer."""


@dataclass(frozen=True)
class SeasonDetails:
    """One season of a series as a catalogue knows it."""

    number: int
    name: str
    episode_count: int
    air_date: str | None = None


@dataclass(frozen=True)
class MediaDetails:
    """What a catalogue (TMDB) knows of a film or series: enough to show it and request it.

    ``ids`` holds every known id by scheme (``tmdb``, ``tvdb``, ``imdb``); ``seasons`` is empty
    for films. ``is_anime`` lets requests go to the instance kept for anime.
    """

    source: str
    media_type: Literal["movie", "tv"]
    title: str
    ids: Mapping[str, str]
    year: int | None = None
    overview: str = ""
    poster_url: str | None = None
    backdrop_url: str | None = None
    genres: tuple[str, ...] = ()
    runtime: int | None = None
    seasons: tuple[SeasonDetails, ...] = ()
    is_anime: bool = False


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
class Progress:
    """How far a requested film or series has got in one download queue: ``percent`` done,
    ``state`` (queued, paused, downloading, importing, warning or failed), ``eta`` when the
    download client expects to finish, and the ``instance`` that downloads it ("Radarr 4K").
    ``title`` tells the items of a series apart ("Breaking Bad S01E02")."""

    percent: float
    state: str
    eta: datetime | None
    instance: str
    title: str = ""


@dataclass(frozen=True)
class Event:
    """Something that happened in MediaNest, e.g. ``plugin.enabled`` or ``request.created``."""

    name: str
    data: Mapping[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


NoticeKind = Literal[
    "MEDIA_PENDING",
    "MEDIA_APPROVED",
    "MEDIA_AUTO_APPROVED",
    "MEDIA_DECLINED",
    "MEDIA_FAILED",
    "MEDIA_AVAILABLE",
    "TEST_NOTIFICATION",
]


@dataclass(frozen=True)
class Notice:
    """A notification for people, handed to every ``notify`` hook.

    ``kind`` uses the names of Overseerr's notification types, so that receivers built for it
    understand ours. ``media`` and ``request`` describe what it is about (empty for a test);
    ``url`` is the page to open.
    """

    kind: NoticeKind
    subject: str
    message: str = ""
    image: str | None = None
    url: str | None = None
    media: Mapping[str, Any] = field(default_factory=dict)
    request: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def event(self) -> str:
        """The event in Overseerr's words: "New Movie Request", "Series Request Now Available"."""
        noun = {"movie": "Movie", "tv": "Series"}.get(str(self.media.get("media_type")), "Media")
        return {
            "MEDIA_PENDING": f"New {noun} Request",
            "MEDIA_APPROVED": f"{noun} Request Approved",
            "MEDIA_AUTO_APPROVED": f"{noun} Request Automatically Approved",
            "MEDIA_DECLINED": f"{noun} Request Declined",
            "MEDIA_FAILED": f"{noun} Request Failed",
            "MEDIA_AVAILABLE": f"{noun} Request Now Available",
        }.get(self.kind, "Test Notification")


@dataclass(frozen=True)
class SignInProvider:
    """A way to sign in, shown as a button on the sign-in page; ``start_path`` begins it."""

    name: str
    label: str
    start_path: str


@dataclass(frozen=True)
class NavItem:
    """A link in the navigation bar, shown to users who hold ``permission`` (if set)."""

    label: str
    href: str
    permission: str | None = None


Json = dict[str, Any] | list[Any]
ResponseLike = web.StreamResponse | BaseModel | Json


@dataclass(frozen=True)
class Metric:
    """A gauge a plugin exports on ``/metrics``, read when Prometheus scrapes.

    ``read`` takes ``plugin`` and returns the value: a number, or for a gauge with ``labels``
    a mapping of label values (a tuple of them, or one string for one label) to numbers. The
    gauge is read while the plugin is enabled; otherwise it is exported with no value.
    """

    name: str
    description: str
    read: Callable[..., Any]
    labels: tuple[str, ...] = ()
