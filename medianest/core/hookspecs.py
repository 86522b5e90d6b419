"""Every hook a MediaNest plugin can implement.

Names come in families: ``register_*`` for things a plugin adds once at start-up,
``extra_*`` for slots it fills on each page, and verbs for what it is asked to do.
Implementations may be ``async def``, may return a value or an awaitable, and may take fewer
arguments than the spec lists, in any order. Each hook is documented in ``docs/plugins.md``.

What a spec declares is what a call does (see ``PluginRegistry.call_each``): a
``firstresult`` hook stops at the first plugin that answers, the others ask every plugin, and
a call must pass exactly the arguments declared here. ``plugin`` comes first in each runtime
hook's spec because MediaNest passes it (each plugin its own context) and the caller passes
the rest, by name; that is how a call is type-checked against its spec.

MediaNest calls each plugin's implementation on its own, so that a plugin that raises is
logged once, shown on the admin page and skipped while the others carry on, and so that
disabled plugins are left out. Hook wrappers are refused at registration: there is no one
call of every implementation for them to wrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import MetaData

from .auth import PermissionSpec
from .extensions import (
    Availability,
    Event,
    FulfilmentResult,
    HealthResult,
    MediaDetails,
    Metric,
    NavItem,
    Notice,
    PluginContext,
    Poller,
    Progress,
    RequestInfo,
    Route,
    SearchResult,
    SignInProvider,
    Widget,
)

PROJECT = "medianest"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration: called once per plugin at start-up ------------------------------------


@hookspec
def register_routes() -> list[Route]:
    """Return the HTTP routes this plugin serves.

    Routes of a disabled plugin answer 404 until it is enabled again.
    """


@hookspec
def register_widgets() -> list[Widget]:
    """Return the dashboard widgets this plugin offers."""


@hookspec
def register_pollers() -> list[Poller]:
    """Return background work to run on an interval while this plugin is active."""


@hookspec
def register_ws_topics() -> list[str]:
    """Return the websocket topics this plugin publishes on.

    Clients may subscribe to them only while the plugin is enabled.
    """


@hookspec
def register_settings_model() -> type[BaseModel]:
    """Return the pydantic model of this plugin's settings.

    The admin page builds its form from the model's JSON schema and validates what is saved
    against it.
    """


@hookspec
def register_sign_in_providers() -> list[SignInProvider]:
    """Return the ways of signing in this plugin offers (buttons on the sign-in page).

    The provider's own routes (``access="public"``) do the work and finish with
    ``medianest.sign_in``.
    """


@hookspec
def register_template_dirs() -> list[Path]:
    """Return folders of Jinja templates this plugin's widgets and pages use."""


@hookspec
def register_tables() -> MetaData:
    """Return the SQLAlchemy ``MetaData`` of this plugin's own tables.

    Their Alembic migrations are the scripts in the ``migrations`` folder of the plugin's
    package, on a branch of their own; ``medianest migrate`` applies them with the core's.
    """


@hookspec
def register_permissions() -> list[PermissionSpec]:
    """Return the permissions this plugin's routes and pages check (``Route(access=...)``).

    The users admin offers them while the plugin is installed; ``default`` ones are given to
    new users.
    """


@hookspec
def register_metrics() -> list[Metric]:
    """Return the gauges this plugin exports on ``/metrics``, read when they are scraped."""


# --- lifecycle: when a plugin becomes active or inactive ---------------------------------


@hookspec
def activate(plugin: PluginContext) -> None:
    """Set up what this plugin needs while it is enabled.

    Fires at start-up for an enabled plugin, when an admin enables it, and after its
    settings change (preceded by :func:`deactivate`). If it raises, the plugin is shown as
    failed on the admin page and stays inactive.

    :param plugin: the plugin's context, with its current settings.
    """


@hookspec
def deactivate(plugin: PluginContext) -> None:
    """Release what :func:`activate` set up.

    Fires when an admin disables the plugin, before its settings change, and at shutdown.

    :param plugin: the plugin's context.
    """


# --- runtime: what a plugin is asked to do ------------------------------------------------


@hookspec
def check_health(plugin: PluginContext) -> HealthResult | list[HealthResult]:
    """Report the state of each service this plugin talks to.

    :param plugin: the plugin's context, with its current settings.
    """


@hookspec
def check_connection(plugin: PluginContext, settings: Any) -> HealthResult | list[HealthResult]:
    """Try proposed settings for real (reach the service, check the key) before they are saved.

    Any result whose status is "down" or "degraded" refuses the save, with its message shown to
    the admin. Results should carry the service's version when it is known.

    :param plugin: the plugin's context (with the settings currently in force).
    :param settings: the proposed settings, an instance of the plugin's settings model.
    """


@hookspec
def search_media(plugin: PluginContext, query: str) -> list[SearchResult]:
    """Return media matching ``query``; results of every enabled plugin are merged.

    :param plugin: the plugin's context.
    :param query: what the user typed.
    """


@hookspec(firstresult=True)
def lookup_media(plugin: PluginContext, media_type: str, tmdb_id: int) -> MediaDetails | None:
    """Describe the film or series with this TMDB id; the first plugin to answer decides.

    Requests are checked against the answer (an unknown id is refused) and shown with it.

    :param plugin: the plugin's context.
    :param media_type: ``"movie"`` or ``"tv"``.
    :param tmdb_id: the media's TMDB id.
    :return: ``None`` when the plugin cannot tell; raise ``MediaNotFound`` when the catalogue
        says there is no such film or series.
    """


@hookspec(firstresult=True)
def fulfil_request(plugin: PluginContext, request: RequestInfo) -> FulfilmentResult | None:
    """Carry out an approved request; the first plugin to return a result decides.

    Return ``None`` to leave the request to another plugin.

    :param plugin: the plugin's context.
    :param request: the approved request.
    """


@hookspec
def check_availability(
    plugin: PluginContext, ids: Mapping[str, str], media_type: str
) -> Availability | None:
    """Say whether a film or a series is on a media server this plugin knows, and which seasons.

    :param plugin: the plugin's context.
    :param ids: the media's external ids, by scheme: ``{"tmdb": "603", "imdb": "tt0133093"}``.
    :param media_type: ``"movie"`` or ``"tv"``.
    :return: ``None`` when the plugin cannot tell (not set up, not scanned yet).
    """


@hookspec
def refresh_library(plugin: PluginContext, path: str | None) -> list[str] | None:
    """Ask a media server to scan for new files: the library holding ``path``, or every library
    MediaNest watches when ``path`` is ``None``. Other plugins call it through
    ``plugin.call_hook("refresh_library", path=...)`` once they have put files in place.

    :param plugin: the plugin's context.
    :param path: a file or folder as the media server sees it, or ``None``.
    :return: the names of the libraries asked to refresh; ``None`` when none holds ``path``.
    """


@hookspec
def collect_media(plugin: PluginContext, title: str, paths: Sequence[str]) -> str | None:
    """Put the media files at ``paths`` in a collection named ``title`` on a media server: a new
    collection, or the one of that name already in their library. Other plugins call it through
    ``plugin.call_hook("collect_media", title=..., paths=[...])`` after ``refresh_library`` for
    the same files. The server may take minutes to add new files, so an implementation may wait
    that long (bounded); callers run it in the background rather than hold up their own work.

    :param plugin: the plugin's context.
    :param title: the collection's name (a playlist's title, say).
    :param paths: media files as the media server sees them.
    :return: the collection's name; ``None`` when no library of this server holds the files.
    """


@hookspec
def request_progress(
    plugin: PluginContext, ids: Mapping[str, str], media_type: str
) -> list[Progress] | None:
    """Say how far the downloads of a requested film or series have got.

    Every enabled plugin is asked; their answers are merged. Return ``None`` when the plugin
    knows nothing of it (not queued here), an empty list when it is known but nothing is
    downloading.

    :param plugin: the plugin's context.
    :param ids: the request's ids, e.g. ``{"tmdb": "603"}`` or ``{"tvdb": "81189"}``.
    :param media_type: ``"movie"`` or ``"tv"``.
    """


@hookspec
def notify(plugin: PluginContext, notice: Notice) -> None:
    """Send a notification somewhere else than MediaNest's own pages (a webhook, a chat).

    Fires for every notice about requests; return quickly and do slow work (retries) in the
    background, so that one slow channel does not hold up the others.

    :param plugin: the plugin's context.
    :param notice: what happened, worded for people, with the media and request it is about.
    """


@hookspec
def handle_event(plugin: PluginContext, event: Event) -> None:
    """Be told of something that happened in MediaNest (to notify people, for example).

    Events are ``plugin.enabled`` and ``plugin.disabled`` (an admin's toggle), and
    ``request.created``, ``request.updated``, ``request.progress`` and ``request.deleted`` (with
    the request as live events describe it). They are told in the background, in order, once
    per event (see ``PluginRegistry.emit``).

    :param plugin: the plugin's context.
    :param event: the event: its name, its data and when it happened.
    """


# --- page additions -----------------------------------------------------------------------


@hookspec
def extra_nav_items(plugin: PluginContext, request: web.Request) -> list[NavItem]:
    """Return links this plugin adds to the navigation bar.

    :param plugin: the plugin's context.
    :param request: the page being rendered.
    """


@hookspec
def extra_template_vars(plugin: PluginContext, request: web.Request) -> dict[str, Any]:
    """Return variables to add to every page's template context.

    :param plugin: the plugin's context.
    :param request: the page being rendered.
    """
