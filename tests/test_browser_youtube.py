"""The YouTube downloads page in a real browser, against a real ``medianest serve``: a link is
pasted, previewed and submitted, and the progress bar fills to 100 % from websocket events
while yt-dlp downloads (the embedded default: the job runs in the web process)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import ADMIN, require
from servers import Server, Servers, create_admin

from medianest.testing.youtube import VideoSite, make_video

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture skips (or, in CI, fails) the test
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    servers = Servers(tmp_path)
    create_admin(servers.environment("web"))
    try:
        web = servers.start("web")
        web.wait_ready()
        yield web
    finally:
        servers.stop_all()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[VideoSite]:
    require(shutil.which("ffmpeg"), "ffmpeg is not installed (apt-get install ffmpeg)")
    clip = make_video(tmp_path / "clip.mp4", seconds=3)
    # Slow enough to watch the bar move: about four seconds for the whole file.
    async with VideoSite(files={"clip.mp4": clip}, bytes_per_second=len(clip) // 4) as fake:
        yield fake  # type: ignore[misc]


async def configure(server: Server, library: Path) -> None:
    async with aiohttp.ClientSession(
        base_url=server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        login = {"username": ADMIN[0], "password": ADMIN[1]}
        async with http.post("/api/v1/auth/login", json=login) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get("/api/v1/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        settings = {"library_path": str(library), "allow_any_host_for_tests": True}
        async with http.put(
            "/api/v1/plugins/youtube/settings", json=settings, headers=csrf
        ) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post("/api/v1/plugins/youtube/enable", headers=csrf) as resp:
            assert resp.status == 200, await resp.text()


def make_library(tmp_path: Path) -> Path:
    library = tmp_path / "library"
    library.mkdir()
    return library


async def test_submit_a_link_and_watch_the_bar_reach_100(
    server: Server, browser: Any, site: VideoSite, tmp_path: Path
) -> None:
    library = make_library(tmp_path)
    await configure(server, library)
    context = await browser.new_context(base_url=server.url)
    context.set_default_timeout(15_000)
    problems: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )
    await page.goto("/login?next=/youtube")
    await page.get_by_label("Username").fill(ADMIN[0])
    await page.get_by_label("Password").fill(ADMIN[1])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/youtube")
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="YouTube")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_text("Nothing downloaded yet.")).to_be_visible()

    # A bad link is refused with words, on the page.
    await page.get_by_label("Link").fill("file:///etc/passwd")
    # The browser reports the 400 answer itself, on the console, at a moment of its own (it
    # may come after the alert is shown): that one report is waited for, then left out.
    async with page.expect_console_message(
        lambda msg: msg.type == "error" and "400" in msg.text
    ) as refused:
        await page.get_by_role("button", name="Download").click()
    await expect(page.get_by_role("alert")).to_contain_text("file:// links are refused")
    problems.remove(f"console error: {(await refused.value).text}")

    url = f"{site.url}/media/clip.mp4"
    await page.get_by_label("Link").fill(url)
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator(".yt-preview h2")).to_have_text("clip")
    await page.get_by_role("button", name="Download").click()

    row = page.locator(".yt-download").first
    bar = row.get_by_role("progressbar")
    await expect(row.locator('[data-field="title"]')).to_have_text("clip")
    # The bar moves while the download runs, then reaches 100 % and the status says so.
    await expect(row).to_have_attribute("data-status", "downloading")
    await page.wait_for_function(
        "() => { const b = document.querySelector('.yt-download progress');"
        " return b && b.value > 0 && b.value < 100; }"
    )
    await expect(row.locator('[data-field="status"]')).to_have_text("completed", timeout=30_000)
    assert await bar.evaluate("b => b.value") == 100
    await expect(row.locator('[data-field="percent"]')).to_have_text("100 %")
    await expect(row.get_by_role("button", name="Cancel")).to_be_hidden()
    assert (library / "admin" / "clip.mp4").exists()

    # The dashboard's widget shows it too.
    await page.goto("/")
    widget = page.locator("#widget-youtube-status")
    await expect(widget.locator('[data-field="status"]')).to_have_text("completed")
    assert problems == []
    await context.close()
