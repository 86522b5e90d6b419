"""The pages in a real browser, against a real ``medianest serve`` process.

Chromium is driven by Playwright: signing in with the local form, the dashboard and its empty
state, enabling the example plugin on the Integrations page, its widget updating live when a
ping is published from outside, its removal when disabled, the settings forms, and the light
and dark themes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN, CHROMIUM_ARGS, require
from servers import Api, Server, Servers, create_admin

from medianest.testing import FakeTMDB

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture skips (or, in CI, fails) every test
    expect = sync_playwright = None

pytestmark = pytest.mark.browser

LIGHT_BACKGROUND = "rgb(246, 247, 249)"
DARK_BACKGROUND = "rgb(18, 20, 23)"


def subscribed_to(topic: str) -> re.Pattern[str]:
    """The page's subscribed topics (every page also follows the user's own news) include
    ``topic``."""
    return re.compile(rf"(^| ){re.escape(topic)}( |$)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    require(os.path.exists(path), "chromium is not installed (apt-get install chromium)")
    require(sync_playwright is not None, "Playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    servers = Servers(tmp_path)
    # The operator's first step on a new installation.
    create_admin(servers.environment("web"))
    try:
        web = servers.start("web")
        web.wait_ready()
        yield web
    finally:
        servers.stop_all()


@dataclass
class Session:
    """A browser context on the server, collecting what the browser's console reports, and a
    script's signed-in access to the same server's API (``api``)."""

    server: Server
    context: Any
    api: Api
    problems: list[str] = field(default_factory=list)
    # Errors the test expects, e.g. the status of a page answering 422 on purpose.
    expected: list[str] = field(default_factory=list)

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url')})")
                if msg.type in ("error", "warning")
                else None
            ),
        )
        return page

    def assert_quiet_console(self) -> None:
        unexpected = [p for p in self.problems if not any(e in p for e in self.expected)]
        assert unexpected == []


@pytest.fixture
def session(browser: Any, server: Server) -> Iterator[Session]:
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1280, "height": 800}, color_scheme="light"
    )
    context.set_default_timeout(10_000)
    try:
        session = Session(server, context, Api(server.url))
        sign_in_with_form(session)
        yield session
    finally:
        context.close()


def sign_in_with_form(session: Session, next_path: str = "/") -> None:
    """Sign in as the administrator on the local form, as a person would."""
    page = session.new_page()
    page.goto(next_path)
    # Anonymous visitors are sent to the sign-in page, which brings them back afterwards.
    expect(page).to_have_title("Sign in · MediaNest")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(session.server.url + next_path)
    expect(page.locator(".topbar .whoami")).to_have_text(ADMIN[0])
    page.close()


@pytest.fixture
def fake_tmdb() -> Iterator[FakeTMDB]:
    """The fake TMDB, served from a thread of its own (these tests are synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeTMDB()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def example_installed() -> None:
    found = importlib.metadata.entry_points(group="medianest.plugins", name="example")
    require(
        found, "the example plugin is not installed (pip install -e examples/medianest-example)"
    )


def test_empty_dashboard(session: Session, tmp_path: Path) -> None:
    page = session.new_page()
    page.goto("/")
    expect(page).to_have_title("Dashboard · MediaNest")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    nav = page.get_by_role("navigation", name="Main")
    # An administrator sees the admin pages' links too.
    expect(nav.get_by_role("link")).to_contain_text(["Dashboard", "Integrations"])
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    expect(page.locator(".empty")).to_contain_text("No integration is enabled yet")
    page.screenshot(path=tmp_path / "dashboard-empty.png", full_page=True)

    nav.get_by_role("link", name="Integrations").click()
    expect(page).to_have_url(session.server.url + "/admin/plugins")
    expect(page.get_by_role("heading", level=1)).to_have_text("Integrations")
    for name in ("arr", "plex", "tautulli", "tmdb", "youtube"):
        expect(page.locator(f"#plugin-{name} [data-status]")).to_have_text("inactive")
    session.assert_quiet_console()


def test_theme_follows_system_and_can_be_chosen(session: Session, tmp_path: Path) -> None:
    page = session.new_page()
    page.goto("/admin/plugins")
    body = page.locator("body")
    expect(body).to_have_css("background-color", LIGHT_BACKGROUND)
    page.emulate_media(color_scheme="dark")
    expect(body).to_have_css("background-color", DARK_BACKGROUND)
    page.screenshot(path=tmp_path / "admin-dark.png", full_page=True)

    # The choice made with the toggle beats the system's and survives a reload.
    page.get_by_role("button", name="Switch between dark and light").click()
    expect(body).to_have_css("background-color", LIGHT_BACKGROUND)
    page.reload()
    expect(body).to_have_css("background-color", LIGHT_BACKGROUND)
    page.screenshot(path=tmp_path / "admin-light.png", full_page=True)
    session.assert_quiet_console()


@pytest.mark.usefixtures("example_installed")
def test_example_widget_enabled_live_and_disabled(session: Session, tmp_path: Path) -> None:
    admin = session.new_page()
    admin.goto("/admin/plugins")
    card = admin.locator("#plugin-example")
    expect(card.locator("[data-status]")).to_have_text("inactive")
    card.get_by_role("button", name="Enable").click()
    expect(card.locator("[data-status]")).to_have_text("active")
    expect(card.get_by_role("button", name="Disable")).to_have_attribute("aria-pressed", "true")

    dashboard = session.new_page()
    dashboard.goto("/")
    widget = dashboard.locator("#widget-example-hello")
    expect(widget.get_by_role("heading")).to_have_text("Example")
    expect(widget).to_contain_text("Hello from the example plugin!")
    expect(widget).to_contain_text("No ping yet")
    expect(dashboard.locator(".empty")).to_have_count(0)
    # The page has subscribed to the widget's topic: what is published now reaches it.
    expect(dashboard.locator("html")).to_have_attribute(
        "data-subscribed", subscribed_to("example.pings")
    )

    dashboard.evaluate("window.notReloaded = true")
    session.api.post("/example/ping", {"message": "hello, browser"})
    expect(widget.locator("[data-ping-message]")).to_have_text("hello, browser")
    expect(widget.locator("[data-ping-count]")).to_have_text("1")
    session.api.post("/example/ping", {"message": "and again"})
    expect(widget.locator("[data-ping-message]")).to_have_text("and again")
    expect(widget.locator("[data-ping-count]")).to_have_text("2")
    assert dashboard.evaluate("window.notReloaded") is True
    dashboard.screenshot(path=tmp_path / "dashboard-light.png", full_page=True)
    dashboard.emulate_media(color_scheme="dark")
    dashboard.screenshot(path=tmp_path / "dashboard-dark.png", full_page=True)

    # Disabling on the admin page takes the widget off the open dashboard, too.
    admin.bring_to_front()
    card.get_by_role("button", name="Disable").click()
    expect(card.locator("[data-status]")).to_have_text("inactive")
    expect(dashboard.locator("#widget-example-hello")).to_have_count(0)
    expect(dashboard.locator(".empty")).to_contain_text("No integration is enabled yet")
    dashboard.goto("/")
    expect(dashboard.locator(".widget")).to_have_count(0)
    assert session.api.get("/api/v1/dashboard") == {"widgets": []}
    session.assert_quiet_console()


def test_admin_page_shows_changes_made_elsewhere(session: Session) -> None:
    page = session.new_page()
    page.goto("/admin/plugins")
    status = page.locator("#plugin-tmdb [data-status]")
    expect(status).to_have_text("inactive")
    expect(page.locator("html")).to_have_attribute("data-subscribed", subscribed_to("plugins"))
    session.api.post("/api/v1/plugins/tmdb/enable")
    expect(status).to_have_text("active")
    expect(status).to_have_class("status status-active")
    # The toggle follows, so the next click does what its label says.
    button = page.locator("#plugin-tmdb [data-toggle]")
    expect(button).to_have_text("Disable")
    expect(button).to_have_attribute("aria-pressed", "true")
    button.click()
    expect(status).to_have_text("inactive")
    expect(button).to_have_text("Enable")
    assert session.api.get("/api/v1/plugins/tmdb")["enabled"] is False
    session.assert_quiet_console()


def test_settings_forms(session: Session, tmp_path: Path, fake_tmdb: FakeTMDB) -> None:
    server = session.server
    page = session.new_page()
    page.goto("/admin/plugins")
    tmdb = page.locator("#plugin-tmdb")
    tmdb.locator("summary", has_text="Settings").click()
    # The key is tried on TMDB (a fake one here) before it is saved.
    secret = fake_tmdb.api_key
    tmdb.get_by_label("API key (v3) or read access token (v4)").fill(secret)
    tmdb.get_by_label("API address").fill(fake_tmdb.url)
    tmdb.get_by_label("Language").fill("fr-FR")
    tmdb.get_by_label("Region").fill("FR")
    tmdb.get_by_role("button", name="Save").click()

    expect(page).to_have_url(server.url + "/admin/plugins#plugin-tmdb")
    tmdb.locator("summary", has_text="Settings").click()
    expect(tmdb.get_by_label("Language")).to_have_value("fr-FR")
    expect(tmdb.get_by_label("Region")).to_have_value("FR")
    # The secret is kept but never sent back to the browser.
    key = tmdb.get_by_label("API key (v3) or read access token (v4)")
    expect(key).to_have_attribute("type", "password")
    expect(key).not_to_have_value(secret)
    saved = session.api.get("/api/v1/plugins/tmdb")["settings"]
    assert saved["language"] == "fr-FR"
    assert saved["region"] == "FR"
    assert saved["api_key"] not in (None, "", secret)
    assert secret not in page.content()
    assert fake_tmdb.calls["GET /3/configuration"] == 1

    plex = page.locator("#plugin-plex")
    plex.locator("summary", has_text="Settings").click()
    plex.get_by_label("Server URL").fill("not a url")
    session.expected.append(
        f"status of 422 (Unprocessable Entity) ({server.url}/admin/plugins/plex/settings)"
    )
    plex.get_by_role("button", name="Save").click()
    errors = plex.get_by_role("alert")
    expect(errors).to_contain_text("url")
    expect(errors).to_contain_text("URL")
    expect(plex.locator("details")).to_have_attribute("open", "")
    # What was typed is still there to be corrected.
    expect(plex.get_by_label("Server URL")).to_have_value("not a url")
    page.screenshot(path=tmp_path / "settings-error.png", full_page=True)
    assert session.api.get("/api/v1/plugins/plex")["settings"] == {}
    session.assert_quiet_console()


def test_sign_in_refused_then_signed_in_and_out(browser: Any, server: Server) -> None:
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    session = Session(server, context, Api(server.url))
    try:
        page = session.new_page()
        page.goto("/admin/plugins")
        expect(page).to_have_url(server.url + "/login?next=/admin/plugins")
        page.get_by_label("Username").fill(ADMIN[0])
        page.get_by_label("Password").fill("not the password")
        session.expected.append(f"status of 401 (Unauthorized) ({server.url}/login)")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text(
            "That username and password do not match an enabled account."
        )
        # The form is there again for a second try, which takes the visitor where they wanted.
        page.get_by_label("Username").fill(ADMIN[0])
        page.get_by_label("Password").fill(ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(server.url + "/admin/plugins")
        expect(page.get_by_role("heading", level=1)).to_have_text("Integrations")

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(server.url + "/login")
        page.goto("/")
        expect(page).to_have_url(server.url + "/login?next=/")
        session.assert_quiet_console()
    finally:
        context.close()
