"""Hook calls do what the hook specifications declare: first-result hooks stop at the first
answer, a call passes exactly the declared arguments, implementations that cannot be called
as declared are refused at registration, and one plugin's failure stays its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest
from aiohttp import web
from conftest import MakeClient, wait_for
from plugins_for_tests import TEMPLATES, WrongArgumentPlugin

from medianest import (
    Event,
    MediaDetails,
    MediaNotFound,
    PluginContext,
    Route,
    SearchResult,
    hookimpl,
)
from medianest.core import hookspecs
from medianest.core.keys import REGISTRY
from medianest.core.plugins import PluginRegistry
from medianest.core.settings import Settings


async def enable(client: Any, *names: str) -> None:
    for name in names:
        resp = await client.post(f"/api/v1/plugins/{name}/enable")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["status"] == "active"


async def listed(client: Any) -> dict[str, dict[str, Any]]:
    """The plugins as the admin API lists them, by name."""
    resp = await client.get("/api/v1/plugins")
    assert resp.status == 200
    return {p["name"]: p for p in (await resp.json())["plugins"]}


def film(source: str) -> MediaDetails:
    return MediaDetails(source=source, media_type="movie", title="The Matrix", ids={"tmdb": "603"})


class Catalogue:
    """Answers ``lookup_media`` (with ``answer``, or by raising ``fails``), counting its calls."""

    def __init__(self, answer: MediaDetails | None, fails: Exception | None = None) -> None:
        self.answer, self.fails, self.calls = answer, fails, 0

    @hookimpl
    async def lookup_media(self, tmdb_id: int) -> MediaDetails | None:
        self.calls += 1
        if self.fails is not None:
            raise self.fails
        return self.answer


class EagerCatalogue(Catalogue):
    """A catalogue asked before the others, whenever it was registered."""

    @hookimpl(tryfirst=True)
    async def lookup_media(self, tmdb_id: int) -> MediaDetails | None:
        return await super().lookup_media(tmdb_id)


class Search:
    """Answers ``search_media`` with one result, or raises ``fails`` until it is cleared."""

    def __init__(self, name: str, fails: Exception | None = None) -> None:
        self.name, self.fails = name, fails

    @hookimpl
    def search_media(self, query: str) -> list[SearchResult]:
        if self.fails is not None:
            raise self.fails
        return [SearchResult(source=self.name, media_type="movie", title=query)]


class Caller:
    """Calls hooks on the others through its own context, as a plugin does."""

    def __init__(self) -> None:
        self.context: PluginContext | None = None

    @hookimpl
    def activate(self, plugin: PluginContext) -> None:
        self.context = plugin

    @hookimpl
    def lookup_media(self) -> MediaDetails:
        return film("caller")  # never asked by its own call_hook


class Listener:
    """Keeps the events it is told of (or raises ``fails`` at each)."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.events: list[Event] = []
        self.fails = fails

    @hookimpl
    async def handle_event(self, event: Event) -> None:
        if self.fails is not None:
            raise self.fails
        self.events.append(event)

    def heard(self, name: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.events if e.name == name]


class Pages:
    """Serves a page of its own, rendered with the template context every page has."""

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [Route("GET", "/pages/greeting", self.page, include_in_schema=False)]

    @hookimpl
    def register_template_dirs(self) -> list[Path]:
        return [TEMPLATES]

    async def page(self, request: web.Request) -> web.StreamResponse:
        return aiohttp_jinja2.render_template("pages/greeting.html", request, {})


class Greeter:
    """Adds ``greeting`` to every page's template variables (or raises ``fails``)."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.fails = fails

    @hookimpl
    def extra_template_vars(self, request: web.Request, plugin: PluginContext) -> dict[str, Any]:
        if self.fails is not None:
            raise self.fails
        return {"greeting": f"{plugin.name} greets {request.path}", "csrf_token": "forged"}


class Wrapper:
    """A hook wrapper, in pluggy's new style."""

    @hookimpl(wrapper=True)
    def search_media(self, query: str) -> Iterator[None]:
        return (yield)


class OldWrapper:
    """A hook wrapper, in pluggy's old style."""

    @hookimpl(hookwrapper=True)
    def notify(self) -> Iterator[None]:
        yield


class NotAGenerator:
    """Declared a wrapper, but not written as one."""

    @hookimpl(wrapper=True)
    def extra_nav_items(self) -> list[Any]:
        return []


async def test_a_first_result_hook_stops_at_the_first_answer_in_pluggys_order(
    sqlite_settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Called last registered first: broken, silent, catalogue, then late (never reached).
    late, catalogue = Catalogue(film("late")), Catalogue(film("catalogue"))
    silent, broken = Catalogue(None), Catalogue(None, fails=RuntimeError("catalogue offline"))
    plugins = [("late", late), ("catalogue", catalogue), ("silent", silent), ("broken", broken)]
    client = await make_client(sqlite_settings, plugins)
    await enable(client, "late", "catalogue", "silent", "broken")
    registry: PluginRegistry = client.app[REGISTRY]

    found = await registry.call_first(hookspecs.lookup_media, media_type="movie", tmdb_id=603)
    assert found == ("catalogue", film("catalogue"))
    assert (broken.calls, silent.calls, catalogue.calls, late.calls) == (1, 1, 1, 0)
    assert (await listed(client))["broken"]["hook_errors"] == {
        "lookup_media": "RuntimeError: catalogue offline"
    }

    # Each kind of hook has its own call: the spec decides, not the caller.
    with pytest.raises(TypeError, match=r"lookup_media\(\) is a first-result hook.*call_first"):
        await registry.call_each(hookspecs.lookup_media, media_type="movie", tmdb_id=603)
    with pytest.raises(TypeError, match=r"search_media\(\) is answered by every plugin"):
        await registry.call_first(hookspecs.search_media, query="matrix")

    # MediaNotFound is an answer, not a failure: it reaches the caller.
    broken.fails = MediaNotFound("no film 603")
    with pytest.raises(MediaNotFound, match="no film 603"):
        await registry.call_first(hookspecs.lookup_media, media_type="movie", tmdb_id=603)


async def test_tryfirst_is_honoured_and_inactive_plugins_are_left_out(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    eager, other = EagerCatalogue(film("eager")), Catalogue(film("other"))
    client = await make_client(sqlite_settings, [("eager", eager), ("other", other)])
    await enable(client, "eager", "other")
    registry: PluginRegistry = client.app[REGISTRY]
    found = await registry.call_first(hookspecs.lookup_media, media_type="movie", tmdb_id=603)
    assert found is not None and found[0] == "eager"

    assert (await client.post("/api/v1/plugins/eager/disable")).status == 200
    found = await registry.call_first(hookspecs.lookup_media, media_type="movie", tmdb_id=603)
    assert found is not None and found[0] == "other"
    assert (
        await registry.call_plugin("eager", hookspecs.lookup_media, media_type="movie", tmdb_id=1)
        is None
    )


async def test_a_call_passes_exactly_the_arguments_the_spec_declares(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, [("search", Search("search"))])
    await enable(client, "search")
    registry: PluginRegistry = client.app[REGISTRY]
    assert await registry.call_each(hookspecs.search_media, query="matrix") == [
        ("search", [SearchResult(source="search", media_type="movie", title="matrix")])
    ]

    call: Any = registry.call_each  # the mistakes mypy would catch, made at run time
    with pytest.raises(TypeError, match=r"search_media\(\) has no argument 'colour'"):
        await call(hookspecs.search_media, query="matrix", colour="red")
    with pytest.raises(TypeError, match=r"search_media\(\) is missing its argument 'query'"):
        await call(hookspecs.search_media)
    with pytest.raises(TypeError, match=r"search_media\(\) is passed 'plugin' by MediaNest"):
        await call(hookspecs.search_media, query="matrix", plugin=None)
    with pytest.raises(TypeError, match=r"search_media\(\) takes its arguments by name"):
        await call(hookspecs.search_media, "matrix")
    with pytest.raises(TypeError, match=r"by its spec \(hookspecs.search_media\)"):
        await call("search_media", query="matrix")
    with pytest.raises(TypeError, match="not one of MediaNest's hook specifications"):
        await call(lambda plugin, query: None, query="matrix")


async def test_call_hook_asks_the_other_plugins_as_the_spec_declares(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    caller, catalogue, second = Caller(), Catalogue(film("catalogue")), Catalogue(film("second"))
    plugins = [("second", second), ("catalogue", catalogue), ("caller", caller)]
    client = await make_client(sqlite_settings, plugins)
    await enable(client, "second", "catalogue", "caller")
    assert caller.context is not None

    # A first-result hook: the first other plugin to answer, the caller itself left out.
    answers = await caller.context.call_hook("lookup_media", media_type="movie", tmdb_id=603)
    assert answers == [("catalogue", film("catalogue"))]
    assert second.calls == 0

    with pytest.raises(TypeError, match=r"lookup_media\(\) has no argument 'tmdb'"):
        await caller.context.call_hook("lookup_media", media_type="movie", tmdb=603)
    with pytest.raises(TypeError, match="MediaNest has no hook named 'lookup_film'"):
        await caller.context.call_hook("lookup_film", media_type="movie", tmdb_id=603)


async def test_implementations_that_cannot_be_called_as_declared_are_refused_at_registration(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        sqlite_settings,
        [
            ("wrongarg", WrongArgumentPlugin()),
            ("wrapper", Wrapper()),
            ("oldwrapper", OldWrapper()),
            ("notagenerator", NotAGenerator()),
            ("search", Search("search")),
        ],
    )
    plugins = await listed(client)
    # An argument the hook does not offer: pluggy's refusal names plugin, hook and argument.
    assert plugins["wrongarg"]["status"] == "import error"
    message = plugins["wrongarg"]["error"]
    assert "'wrongarg'" in message and "'activate'" in message and "'ctx'" in message
    # Hook wrappers: there is no call of every implementation for them to wrap.
    for name, hook in (("wrapper", "search_media"), ("oldwrapper", "notify")):
        assert plugins[name]["status"] == "import error"
        assert f"Plugin {name!r} for hook {hook!r}" in plugins[name]["error"]
        assert "hook wrapper" in plugins[name]["error"]
    assert plugins["notagenerator"]["status"] == "import error"
    assert "'notagenerator' for hook 'extra_nav_items'" in plugins["notagenerator"]["error"]
    assert (await client.post("/api/v1/plugins/wrapper/enable")).status == 409

    # The refused plugins take no part; the others work.
    await enable(client, "search")
    registry: PluginRegistry = client.app[REGISTRY]
    answers = await registry.call_each(hookspecs.search_media, query="matrix")
    assert [name for name, _ in answers] == ["search"]
    assert (await client.get("/")).status == 200


async def test_a_raising_plugin_is_skipped_logged_once_and_shown_until_it_recovers(
    sqlite_settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Search("flaky", fails=ConnectionError("flaky search refused"))
    client = await make_client(sqlite_settings, [("good", Search("good")), ("flaky", flaky)])
    await enable(client, "good", "flaky")
    registry: PluginRegistry = client.app[REGISTRY]
    caplog.set_level(logging.ERROR)

    for _ in range(3):
        answers = await registry.call_each(hookspecs.search_media, query="matrix")
        assert [name for name, _ in answers] == ["good"]
        resp = await client.get("/search", params={"q": "matrix"})
        assert resp.status == 200
    logged = [r for r in caplog.records if "flaky search refused" in str(r.exc_info)]
    assert len(logged) == 1
    assert "plugin flaky failed in search_media" in logged[0].getMessage()
    assert (await listed(client))["flaky"]["hook_errors"] == {
        "search_media": "ConnectionError: flaky search refused"
    }
    admin = await (await client.get("/admin/plugins")).text()
    assert "flaky search refused" in admin

    flaky.fails = None
    answers = await registry.call_each(hookspecs.search_media, query="matrix")
    assert [name for name, _ in answers] == ["flaky", "good"]
    assert (await listed(client))["flaky"]["hook_errors"] == {}


async def test_handle_event_tells_plugins_of_toggles_and_requests(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    listener, deaf, late = Listener(), Listener(fails=RuntimeError("no ears")), Listener()
    plugins = [
        ("listener", listener),
        ("deaf", deaf),
        ("late", late),
        ("catalogue", Catalogue(film("catalogue"))),
        ("search", Search("search")),
    ]
    client = await make_client(sqlite_settings, plugins)
    await enable(client, "deaf", "listener", "catalogue", "search")
    toggled = [{"name": "listener"}, {"name": "catalogue"}, {"name": "search"}]
    await wait_for(lambda: _true(listener.heard("plugin.enabled") == toggled))
    assert (await client.post("/api/v1/plugins/search/disable")).status == 200
    await wait_for(lambda: _true(listener.heard("plugin.disabled") == [{"name": "search"}]))
    await enable(client, "catalogue")  # enabled already: nothing happened, nothing is told

    resp = await client.post("/api/v1/requests", json={"media_type": "movie", "tmdb_id": 603})
    assert resp.status == 201, await resp.text()
    made = (await resp.json())["request"]
    await wait_for(lambda: _true(bool(listener.heard("request.created"))))
    [created] = listener.heard("request.created")
    assert created["id"] == made["id"] and created["title"] == "The Matrix"
    assert created["requested_by"] == "admin"
    assert (await client.delete(f"/api/v1/requests/{made['id']}")).status == 200
    await wait_for(lambda: _true(bool(listener.heard("request.deleted"))))
    assert listener.heard("plugin.enabled") == toggled
    assert all(e.at.tzinfo is not None for e in listener.events)

    # The plugin that raises is shown failing; the others were told all the same.
    assert (await listed(client))["deaf"]["hook_errors"] == {
        "handle_event": "RuntimeError: no ears"
    }
    # A disabled plugin is told nothing more.
    assert (await client.post("/api/v1/plugins/listener/disable")).status == 200
    told = len(listener.events)
    await enable(client, "late", "search")
    await wait_for(lambda: _true({"name": "search"} in late.heard("plugin.enabled")))
    assert len(listener.events) == told


async def _true(value: bool) -> bool:
    return value


async def test_extra_template_vars_reach_the_pages_rendered(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    plugins = [
        ("pages", Pages()),
        ("greeter", Greeter()),
        ("rude", Greeter(fails=LookupError("no words"))),
    ]
    client = await make_client(sqlite_settings, plugins)
    await enable(client, "pages", "greeter", "rude")

    resp = await client.get("/pages/greeting")
    assert resp.status == 200
    page = await resp.text()
    assert '<p class="greeting">greeter greets /pages/greeting</p>' in page
    # A plugin adds variables; it does not replace MediaNest's own.
    assert "forged" not in page
    assert (await listed(client))["rude"]["hook_errors"] == {
        "extra_template_vars": "LookupError: no words"
    }
    assert (await client.get("/")).status == 200

    assert (await client.post("/api/v1/plugins/greeter/disable")).status == 200
    page = await (await client.get("/pages/greeting")).text()
    assert '<p class="greeting">no greeting</p>' in page


def test_deprecated_names_still_import_with_a_warning_that_says_what_replaces_them() -> None:
    import medianest
    from medianest.core.http import tls_context as core_tls_context
    from medianest.core.probe import probe as core_probe

    with pytest.warns(DeprecationWarning, match=r"medianest.probe .*plugin.service_client"):
        from medianest import probe
    assert probe is core_probe
    with pytest.warns(DeprecationWarning, match=r"medianest.tls_context .*no ssl argument"):
        assert medianest.tls_context is core_tls_context
    assert "probe" not in medianest.__all__ and "tls_context" not in medianest.__all__
    with pytest.raises(AttributeError, match="has no attribute 'probe_all'"):
        medianest.probe_all  # noqa: B018
