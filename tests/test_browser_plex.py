"""Sign in with Plex in a real browser, against a real ``medianest serve`` process.

The fake plex.tv (and its stand-in for the app.plex.tv page) and the fake Plex server run in
the test process; the browser goes from MediaNest's sign-in page to the Plex page, approves
there, and comes back signed in.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import ADMIN
from servers import Server, Servers, _command

from medianest.testing import FakePlexMediaServer, FakePlexTV

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture skips (or, in CI, fails) the test
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Any:
    servers = Servers(tmp_path)
    # A local admin first (as `medianest create-admin` makes one), to set the plugin up.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env["MEDIANEST_DATA_DIR"] = str(tmp_path / "web")
    subprocess.run(
        [*_command(), "create-admin", "--username", ADMIN[0], "--password-stdin"],
        input=ADMIN[1] + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        web = servers.start("web")
        web.wait_ready()
        yield web
    finally:
        servers.stop_all()


async def configure_plex(server: Server, settings: dict[str, str]) -> None:
    """As the admin, over the API: set the Plex plugin up and enable it."""
    async with aiohttp.ClientSession(
        base_url=server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        login = {"username": ADMIN[0], "password": ADMIN[1]}
        async with http.post("/api/v1/auth/login", json=login) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get("/api/v1/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        async with http.put("/api/v1/plugins/plex/settings", json=settings, headers=csrf) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post("/api/v1/plugins/plex/enable", headers=csrf) as resp:
            assert resp.status == 200, await resp.text()


async def test_sign_in_with_plex_in_a_browser(server: Server, browser: Any) -> None:
    plex_tv = FakePlexTV()
    owner = plex_tv.add_account("olivia")
    friend = plex_tv.add_account("sam")
    pms = FakePlexMediaServer(name="Living Room Plex", tokens={owner.token})
    plex_tv.add_server(pms.name, owner, shared_with=[friend], machine_id=pms.machine_id)
    await plex_tv.start()
    await pms.start()
    try:
        await configure_plex(
            server,
            {
                "url": pms.url,
                "plex_tv_url": plex_tv.url,
                "plex_app_url": plex_tv.url + "/auth",
            },
        )
        context = await browser.new_context(base_url=server.url)
        context.set_default_timeout(10_000)
        problems: list[str] = []
        page = await context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        await page.goto("/login")
        await page.get_by_role("link", name="Sign in with Plex").click()
        # The Plex page, with MediaNest named as the app asking.
        await page.wait_for_url(plex_tv.url + "/auth#?*")
        await expect(page.locator("#client")).to_have_text("Allow MediaNest to use your account")
        await page.get_by_role("button", name="Approve as sam").click()
        # Back on MediaNest, signed in.
        await page.wait_for_url(server.url + "/")
        await expect(page.locator(".topbar .whoami")).to_have_text("sam")
        assert problems == []
        await context.close()
    finally:
        await plex_tv.stop()
        await pms.stop()
