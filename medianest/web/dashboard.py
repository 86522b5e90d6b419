"""The dashboard's widgets, computed once and shared by every viewer.

A widget with a topic (whose poller announces each change of what it shows, failures
included) has its *view* (its data, or the error or notice shown instead, its JSON and the
HTML of its tile) computed for an audience (everyone, admins apart from the others, or each
user: :attr:`Widget.audience`) and kept:

- until its topic announces a change, on any process (announcements come through the bus):
  the view is then computed again at once, and viewers arriving meanwhile wait for it (at most
  :data:`PATIENCE`), so that a dashboard reloading the tile on the announcement gets the news;
  when it takes longer, they get the previous view and the topic is announced again on this
  process once the new one is ready;
- at most :data:`STALE_AFTER` seconds; after that the next viewer still gets it at once while
  it is computed again in the background.

A viewer therefore waits for no upstream service once a view exists, and a dashboard answer is
a lookup per widget and a join of serialised pieces. A widget without a topic announces
nothing, so nothing could tell its view is out of date: it is computed for each viewer (viewers
arriving while it is computed share that computation), its loader's own caching (the service
client's) keeping the upstream calls down.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from ..core.auth import CurrentUser
from ..core.extensions import PluginContext, Widget, call_with, parameters, resolve
from ..core.http import Fetched
from ..core.plugins import PluginRecord, PluginRegistry

log = logging.getLogger(__name__)

# How long a view is shown before it is computed again in the background.
STALE_AFTER = 60.0
# How long a viewer waits for a view being computed after its topic announced a change,
# before getting the previous one (the topic is then announced again on this process once the
# view is ready, so that open dashboards fetch it).
PATIENCE = 0.25
# Joined dashboards kept (one per audience mix that looked lately).
MAX_JOINED = 256
# Dashboard pages kept, one per session (see WidgetBoard.page()).
MAX_PAGES = 256
# Users whose last dashboard is kept.
MAX_VIEWERS = 10_000


class WidgetOut(BaseModel):
    plugin: str
    name: str
    title: str
    topic: str | None
    data: Any = None
    error: str | None = None
    notice: str | None = None


@dataclass
class RenderedWidget:
    plugin: str
    widget: Widget
    data: Any = None
    html: str = ""
    error: str | None = None
    # Shown above data that is not fresh: "Sonarr is unreachable since 10:42; showing…".
    notice: str | None = None


@dataclass(eq=False)
class WidgetView:
    """One widget as one audience sees it."""

    widget: RenderedWidget
    # JSON of the widget in the dashboard API's shape.
    json: bytes
    # The tile (templates/widget.html) with the widget's own template rendered inside.
    tile: Markup
    # The plugin's context it was computed in: a plugin re-activated (new settings) has a new
    # one, and its views are computed afresh.
    context: PluginContext
    computed_at: float


def audience(widget: Widget, user: CurrentUser | None) -> str:
    """Who sees the same view of ``widget`` as ``user``."""
    kind = widget.audience
    if kind is None:
        # A loader that reads the request may show each user something else.
        names = parameters(widget.load)  # None: it takes **kwargs, the request among them
        kind = "user" if names is None or "request" in names else "everyone"
    if kind == "everyone":
        return "*"
    if user is None:
        return "anonymous"
    if kind == "role":
        return "admin" if user.is_admin else "member"
    return f"user:{user.id}"


Key = tuple[str, str, str]


def view_key(record: PluginRecord, widget: Widget, user: CurrentUser | None) -> Key:
    """Which kept view of ``widget`` ``user`` sees."""
    return (record.name, widget.name, audience(widget, user))


@dataclass(frozen=True)
class _Answer:
    changes: tuple[int, int]
    fresh_until: float
    views: list[WidgetView]


@dataclass(frozen=True)
class _Page:
    tiles: Markup
    context: dict[str, Any]
    body: bytes


def _fresh_until(views: list[WidgetView]) -> float:
    """Until when every one of ``views`` may be shown as it is (a widget without a topic is
    computed for each viewer: never)."""
    if any(view.widget.widget.topic is None for view in views):
        return 0.0
    return min((view.computed_at + STALE_AFTER for view in views), default=float("inf"))


class WidgetBoard:
    """Every widget's views, per audience, in this process."""

    def __init__(self, registry: PluginRegistry, timeout: float) -> None:
        self._registry = registry
        self._timeout = timeout
        self._views: dict[Key, WidgetView] = {}
        self._computing: dict[Key, asyncio.Task[WidgetView]] = {}
        # Views being computed because their topic announced a change: viewers wait for them.
        self._news: set[Key] = set()
        # Views whose topic announced a change while they were being computed: they are
        # computed once more when that is done.
        self._again: set[Key] = set()
        # Views computed with news that some viewer stopped waiting for.
        self._late: set[Key] = set()
        # Announces a widget's topic again on this process (set once the hub exists).
        self.republish: Callable[[str], None] | None = None
        # The tiles of the dashboards last shown, joined (see tiles()).
        self._joined: dict[tuple[WidgetView, ...], Markup] = {}
        # Counts every start and end of a computation: the users' last answers hold until it
        # moves (see views()).
        self._changes = 0
        self._last: dict[tuple[uuid.UUID, bool] | None, _Answer] = {}
        # The request each audience's view was last computed for (its loader may read it).
        self._requests: dict[Key, web.Request] = {}
        # The dashboard page last rendered for each session (see page()).
        self._pages: dict[tuple[uuid.UUID, uuid.UUID | None], _Page] = {}

    # --- reading -------------------------------------------------------------------------

    async def views(self, request: web.Request, user: CurrentUser | None) -> list[WidgetView]:
        """Every widget of every enabled integration, as ``user`` (who sent ``request``) sees
        it."""
        # The last answer to this user stands while no view changed or went stale and no
        # integration was switched on or off: a lookup, not a look at every widget.
        viewer = (user.id, user.is_admin) if user is not None else None
        last = self._last.get(viewer)
        if (
            last is not None
            and last.changes == (self._changes, self._registry.changes)
            and time.monotonic() < last.fresh_until
        ):
            return last.views
        changes = (self._changes, self._registry.changes)
        views = await self._gather(request, user)
        if changes == (self._changes, self._registry.changes):
            if len(self._last) >= MAX_VIEWERS:
                self._last.clear()
            self._last[viewer] = _Answer(changes, _fresh_until(views), views)
        return views

    async def _gather(self, request: web.Request, user: CurrentUser | None) -> list[WidgetView]:
        wanted = [
            (record, widget)
            for record in self._registry.active_records()
            for widget in record.widgets
        ]
        found: list[WidgetView | None] = [self._current(r, w, request, user) for r, w in wanted]
        missing = [i for i, view in enumerate(found) if view is None]
        if missing:
            computed = await asyncio.gather(
                *(self._wait(*wanted[i], request, user) for i in missing)
            )
            for i, view in zip(missing, computed, strict=True):
                found[i] = view
        return [view for view in found if view is not None]

    def tiles(self, views: list[WidgetView]) -> Markup:
        """The tiles of ``views`` as one piece of HTML, joined once for as long as the views
        stay the same (each view is replaced, never changed, when computed again)."""
        key = tuple(views)
        joined = self._joined.get(key)
        if joined is None:
            joined = Markup("\n").join(view.tile for view in views)
            if len(self._joined) >= MAX_JOINED:
                self._joined.clear()
            self._joined[key] = joined
        return joined

    def page(self, user: CurrentUser, tiles: Markup, context: Mapping[str, Any]) -> bytes | None:
        """The page last rendered for ``user``'s session, if it was rendered from these
        ``tiles`` (the same joined views) and an equal page ``context`` (navigation, unread
        count, CSRF token, the plugins' template variables); else None."""
        kept = self._pages.get((user.id, user.session_id))
        if kept is not None and kept.tiles is tiles and kept.context == context:
            return kept.body
        return None

    def keep_page(
        self, user: CurrentUser, tiles: Markup, context: Mapping[str, Any], body: bytes
    ) -> None:
        if len(self._pages) >= MAX_PAGES:
            self._pages.clear()
        self._pages[(user.id, user.session_id)] = _Page(tiles, dict(context), body)

    async def view(
        self,
        record: PluginRecord,
        widget: Widget,
        request: web.Request,
        user: CurrentUser | None,
    ) -> WidgetView:
        """One widget as ``user`` sees it."""
        return self._current(record, widget, request, user) or await self._wait(
            record, widget, request, user
        )

    def _current(
        self,
        record: PluginRecord,
        widget: Widget,
        request: web.Request,
        user: CurrentUser | None,
    ) -> WidgetView | None:
        """The view to show at once, or ``None`` when the viewer has to wait for one."""
        if widget.topic is None:
            return None
        key = view_key(record, widget, user)
        view = self._views.get(key)
        if view is None or view.context is not self._registry.context(record.name):
            return None
        if key in self._computing:
            return None if key in self._news else view
        if time.monotonic() - view.computed_at >= STALE_AFTER:
            self._start(key, record, widget, request)
        return view

    async def _wait(
        self,
        record: PluginRecord,
        widget: Widget,
        request: web.Request,
        user: CurrentUser | None,
    ) -> WidgetView:
        key = view_key(record, widget, user)
        task = self._computing.get(key) or self._start(key, record, widget, request)
        previous = self._views.get(key)
        if (
            widget.topic is None
            or previous is None
            or previous.context is not self._registry.context(record.name)
        ):
            return await asyncio.shield(task)
        # The view is being computed with news: wait for it, and for the one after it when
        # the news came in the middle, but not longer than PATIENCE in all.
        deadline = time.monotonic() + PATIENCE
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                self._late.add(key)
                return self._views.get(key, previous)
            following = self._computing.get(key)
            if following is None or key not in self._news:
                return self._views.get(key, previous)
            task = following

    # --- computing -----------------------------------------------------------------------

    def _start(
        self,
        key: Key,
        record: PluginRecord,
        widget: Widget,
        request: web.Request,
        *,
        news: bool = False,
    ) -> asyncio.Task[WidgetView]:
        self._changes += 1
        self._requests[key] = request
        if news:
            self._news.add(key)
        # In a context of its own: started from a poller's announcement, it would otherwise
        # inherit the poller's "wait for the service" and hold viewers up for a slow one.
        task = asyncio.get_running_loop().create_task(
            self._compute(record, widget, request), context=contextvars.Context()
        )
        task.add_done_callback(lambda t: self._done(key, t))
        self._computing[key] = task
        return task

    def _done(self, key: Key, task: asyncio.Task[WidgetView]) -> None:
        self._changes += 1
        if self._computing.get(key) is task:
            del self._computing[key]
        if not task.cancelled() and task.exception() is None:
            self._views[key] = task.result()
            if key in self._late and key not in self._again:
                # Some viewers were shown the previous view: tell their dashboards to look again.
                self._late.discard(key)
                topic = task.result().widget.widget.topic
                if topic is not None and self.republish is not None:
                    self.republish(topic)
        if key not in self._again:
            self._news.discard(key)
            return
        self._again.discard(key)
        # Announced while it was being computed: what it shows may predate the news.
        record = self._registry.records.get(key[0])
        widget = next((w for w in record.widgets if w.name == key[1]), None) if record else None
        if record is not None and record.active and widget is not None:
            self._start(key, record, widget, self._requests[key], news=True)
        else:
            self._news.discard(key)

    async def _compute(
        self, record: PluginRecord, widget: Widget, request: web.Request
    ) -> WidgetView:
        context = self._registry.context(record.name)
        rendered = await self._load(record, widget, context, request)
        if rendered.error is None:
            rendered = _render_body(request, rendered)
        tile = Markup(
            aiohttp_jinja2.get_env(request.app)
            .get_template("widget.html")
            .render(w=rendered, app=request.app)
        )
        out = WidgetOut(
            plugin=rendered.plugin,
            name=widget.name,
            title=widget.title,
            topic=widget.topic,
            data=rendered.data,
            error=rendered.error,
            notice=rendered.notice,
        )
        try:
            json = out.model_dump_json().encode()
        except PydanticSerializationError as exc:
            log.error("widget %s:%s data is not JSON: %s", record.name, widget.name, exc)
            out.data, out.error = None, f"{widget.title} could not be shown: its data is not JSON"
            json = out.model_dump_json().encode()
        return WidgetView(rendered, json, tile, context, time.monotonic())

    async def _load(
        self,
        record: PluginRecord,
        widget: Widget,
        context: PluginContext,
        request: web.Request,
    ) -> RenderedWidget:
        registry = self._registry
        out = RenderedWidget(record.name, widget)
        try:
            out.data = await asyncio.wait_for(
                resolve(call_with(widget.load, plugin=context, request=request)), self._timeout
            )
        except TimeoutError:
            out.error = f"{widget.title} did not answer within {self._timeout:g} s."
        except Exception as exc:
            if registry.note_failure(record.name, f"widget {widget.name}", exc):
                log.warning("widget %s:%s failed: %s", record.name, widget.name, exc)
            out.error = f"{widget.title} is unavailable: {exc}"
        else:
            registry.note_success(record.name, f"widget {widget.name}")
            if isinstance(out.data, Fetched):
                # A widget fed through the service client layer degrades on its own: the last
                # good data with its age, or a clear "unavailable" when there is none.
                fetched, out.data = out.data, out.data.value
                if fetched.error is not None:
                    if fetched.value is None:
                        out.error = fetched.describe()
                    else:
                        out.notice = fetched.describe()
        return out

    # --- news ------------------------------------------------------------------------------

    def announced(self, topic: str) -> None:
        """``topic`` announced a change: compute the views of its widgets again now."""
        for record in self._registry.active_records():
            for widget in record.widgets:
                if widget.topic == topic:
                    self._refresh(record, widget)

    def _refresh(self, record: PluginRecord, widget: Widget) -> None:
        keys = [k for k in self._views if k[0] == record.name and k[1] == widget.name]
        for key in keys:
            if key in self._computing:
                self._changes += 1
                self._again.add(key)
                self._news.add(key)
            else:
                self._start(key, record, widget, self._requests[key], news=True)
        self._forget_old_users(keys)

    def _forget_old_users(self, keys: Iterable[Key]) -> None:
        # A view per user: drop those nobody asked for since long ago, so that the board
        # holds the users who look at the dashboard, not every user who ever did.
        now = time.monotonic()
        for key in keys:
            view = self._views.get(key)
            if (
                key[2].startswith("user:")
                and view is not None
                and now - view.computed_at > 10 * STALE_AFTER
                and key not in self._computing
            ):
                self._views.pop(key, None)
                self._requests.pop(key, None)

    def on_bus_message(self, message: Mapping[str, Any]) -> None:
        topic = message.get("topic")
        if isinstance(topic, str):
            self.announced(topic)

    async def close(self) -> None:
        tasks = list(self._computing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._computing.clear()


def _render_body(request: web.Request, rendered: RenderedWidget) -> RenderedWidget:
    """The widget's own template, with ``data`` and ``widget`` (and nothing of the viewer:
    the HTML is shared by the audience)."""
    name = f"{rendered.plugin}/{rendered.widget.template}"
    try:
        template = aiohttp_jinja2.get_env(request.app).get_template(name)
        rendered.html = template.render(data=rendered.data, widget=rendered.widget, app=request.app)
    except Exception as exc:
        log.exception("widget %s:%s failed to render", rendered.plugin, rendered.widget.name)
        rendered.error = f"{rendered.widget.title} could not be shown: {type(exc).__name__}"
    return rendered
