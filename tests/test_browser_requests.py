"""A request's journey through the pages, in a real browser: a friend searches, picks two
seasons and asks; an admin approves from the list; the friend watches the request go to
downloading and then available without reloading, and the bell count rise.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ADMIN, MakeClient
from request_world import FRIEND, SERIES, SERIES_TVDB, patch_intervals, world

from medianest.core.settings import Settings, load_settings

try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture skips (or, in CI, fails) the test
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser


async def signed_in_page(browser: Any, base_url: str, username: str, password: str) -> Any:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".topbar .whoami")).to_have_text(username)
    return page


async def test_a_series_request_through_the_pages(
    make_client: MakeClient,
    sqlite_settings: Settings,
    browser: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_intervals(monkeypatch)
    settings = load_settings(data_dir=sqlite_settings.data_dir, request_check_interval=0.3)
    async with world(make_client, settings) as w:
        base = str(w.admin.make_url("/")).rstrip("/")
        friend = await signed_in_page(browser, base, *FRIEND)
        admin = await signed_in_page(browser, base, *ADMIN)

        # The friend searches and opens the series.
        await (
            friend.get_by_role("navigation", name="Main").get_by_role("link", name="Search").click()
        )
        await friend.get_by_role("searchbox").fill("thrones")
        await friend.get_by_role("button", name="Search").click()
        result = friend.locator(f'.result[data-tmdb-id="{SERIES}"]')
        await expect(result.locator(".badge")).to_have_text("Not in Plex yet")
        await result.get_by_role("link", name="Game of Thrones").click()
        await expect(friend.get_by_role("heading", level=1)).to_contain_text("Game of Thrones")

        # Two seasons, requested with the form.
        await friend.get_by_label("Season 1").check()
        await friend.get_by_label("Season 2").check()
        await friend.get_by_role("button", name="Request these seasons").click()
        await expect(friend.locator("[role=status]")).to_contain_text(
            "requested; an admin will look at it"
        )
        status = friend.locator(".request [data-request-status]")
        await expect(status).to_have_text("waiting for approval")
        await expect(friend.locator("[data-unread-count]")).to_be_hidden()

        # The admin approves it from the list of all requests.
        await admin.goto("/requests?scope=all&status=pending")
        row = admin.locator("tr[data-request-id]", has_text="Game of Thrones")
        await row.get_by_role("checkbox").check()
        await admin.get_by_role("button", name="Approve ticked").click()
        await expect(admin.locator("[role=status]")).to_have_text("Approved 1 request.")

        # The friend's open page follows without a reload: downloading, with progress...
        await expect(status).to_have_text("downloading")
        await expect(friend.locator("[data-unread-count]")).to_have_text("1")
        assert len(w.sonarr.added_series) == 1
        series_id = next(s.id for s in w.sonarr.series.values() if s.show.tvdb_id == SERIES_TVDB)
        queue_id = w.sonarr.add_queue_item(w.sonarr.episode_id(series_id, 1, 1))
        w.sonarr.advance_download(queue_id, 0.6)
        await expect(friend.locator(".request [data-percent]")).to_contain_text("60")

        # ...then available once Plex has both seasons.
        details = await (await w.friend.get(f"/api/v1/media/tv/{SERIES}")).json()
        episodes = {s["number"]: s["episode_count"] for s in details["seasons"]}
        w.pms.add_show(
            "Game of Thrones",
            2011,
            tvdb_id=SERIES_TVDB,
            tmdb_id=SERIES,
            seasons={1: episodes[1], 2: episodes[2]},
        )
        await expect(status).to_have_text("available")
        await expect(friend.locator("[data-unread-count]")).to_have_text("2")
        await expect(friend.locator(".toast").last).to_contain_text("Ready to watch in Home Server")

        # The notifications page lists both; marking them read clears the bell.
        await friend.locator(".bell").click()
        await expect(friend.locator(".notifications li")).to_have_count(2)
        await friend.get_by_role("button", name="Mark all read").click()
        await expect(friend.locator("[data-unread-count]")).to_be_hidden()
        # The Discover page's posters carry the same badges.
        await friend.goto("/discover")
        await expect(friend.locator('.request-badge[data-tmdb-id="603"]').first).to_have_text(
            "Available in Plex"
        )
        await expect(friend.locator(f'.request-badge[data-tmdb-id="{SERIES}"]').first).to_have_text(
            "In Plex: seasons 1, 2"
        )
        await expect(friend.locator('.request-badge[data-tmdb-id="604"]').first).to_have_text("")
        assert friend.problems == [] and admin.problems == []
