"""The dashboard's widgets are computed once per audience and kept until their topic announces a
change: on a real app, with a plugin whose loaders count their calls."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from conftest import ADMIN, Client, MakeClient, add_user, wait_for

from medianest import Notice, PluginContext, Widget, current_user, hookimpl
from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings, load_settings
from medianest.requests.keys import NOTIFIER

FRIEND = ("friend", "a friend's long password")
TEMPLATES = Path(__file__).parent / "plugin_templates"


class Source:
    """What the widgets show, and how often they were computed."""

    def __init__(self) -> None:
        self.word = "alpha"
        self.calls: dict[str, int] = {}
        self.slow = 0.0

    def called(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


SOURCE = Source()


async def load_shared() -> dict[str, str]:
    SOURCE.called("shared")
    word = SOURCE.word
    await asyncio.sleep(SOURCE.slow)
    return {"word": word}


async def load_mine(request: web.Request) -> dict[str, str]:
    user = current_user(request)
    SOURCE.called(f"mine:{user.username if user else '-'}")
    return {"word": f"{SOURCE.word} for {user.username if user else 'nobody'}"}


async def load_roles(request: web.Request) -> dict[str, str]:
    user = current_user(request)
    SOURCE.called("roles")
    return {"word": "admins' view" if user and user.is_admin else "members' view"}


async def load_odd() -> dict[str, Any]:
    return {"word": object()}


async def load_untopical() -> dict[str, str]:
    SOURCE.called("untopical")
    return {"word": SOURCE.word}


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget("shared", "Shared", "word.html", load_shared, topic="board.shared"),
        Widget("mine", "Mine", "word.html", load_mine, topic="board.mine"),
        Widget("roles", "Roles", "word.html", load_roles, topic="board.roles", audience="role"),
        Widget("odd", "Odd", "word.html", load_odd, topic="board.odd"),
        Widget("untopical", "Untopical", "word.html", load_untopical),
    ]


@hookimpl
def register_ws_topics() -> list[str]:
    return ["board.shared", "board.mine", "board.roles", "board.odd"]


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


PLUGIN = SimpleNamespace(
    register_widgets=register_widgets,
    register_ws_topics=register_ws_topics,
    register_template_dirs=register_template_dirs,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", widget_timeout=5)


@pytest.fixture(autouse=True)
def fresh_source() -> None:
    SOURCE.__init__()  # type: ignore[misc]


async def portal(make_client: MakeClient, settings: Settings) -> Client:
    client = await make_client(settings, extra_plugins=[("board", PLUGIN)])
    assert (await client.post("/api/v1/plugins/board/enable")).status == 200
    return client


async def words(client: Client) -> dict[str, Any]:
    resp = await client.get("/api/v1/dashboard")
    assert resp.status == 200, await resp.text()
    return {
        w["name"]: (w["data"] or {}).get("word") or w["error"]
        for w in (await resp.json())["widgets"]
        if w["plugin"] == "board"
    }


async def announce(client: Client, topic: str) -> None:
    plugin: PluginContext = client.app[REGISTRY].context("board")
    await plugin.publish(topic, "updated", {})


async def test_viewers_share_one_computation_until_the_topic_announces_a_change(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await portal(make_client, settings)
    seen = await asyncio.gather(*(words(client) for _ in range(20)))
    assert {s["shared"] for s in seen} == {"alpha"}
    assert SOURCE.calls["shared"] == 1

    # What the source says changes, but nothing announced it: the view is kept.
    SOURCE.word = "beta"
    assert (await words(client))["shared"] == "alpha"
    # A widget without a topic cannot be kept: it is computed for each view.
    assert (await words(client))["untopical"] == "beta"

    await announce(client, "board.shared")
    assert (await words(client))["shared"] == "beta"
    page = await (await client.get("/", headers={"Accept": "text/html"})).text()
    assert '<p class="word">beta</p>' in page
    fragment = await (await client.get("/widgets/board/shared")).text()
    assert '<p class="word">beta</p>' in fragment
    assert SOURCE.calls["shared"] == 2


async def test_each_audience_sees_its_own_view(make_client: MakeClient, settings: Settings) -> None:
    admin = await portal(make_client, settings)
    await add_user(admin.app, *FRIEND)
    # A second browser on the same server.
    friend = Client(admin.server)
    await friend.start_server()
    await friend.sign_in(*FRIEND)
    try:
        mine, theirs = await words(admin), await words(friend)
        assert mine["mine"] == f"alpha for {ADMIN[0]}"
        assert theirs["mine"] == f"alpha for {FRIEND[0]}"
        assert mine["roles"] == "admins' view" and theirs["roles"] == "members' view"
        assert mine["shared"] == theirs["shared"] == "alpha"
        for _ in range(3):
            await words(admin)
            await words(friend)
        assert SOURCE.calls["shared"] == 1
        assert SOURCE.calls[f"mine:{ADMIN[0]}"] == SOURCE.calls[f"mine:{FRIEND[0]}"] == 1
        assert SOURCE.calls["roles"] == 2

        # One announcement reaches every audience's view.
        SOURCE.word = "beta"
        await announce(admin, "board.mine")
        assert (await words(friend))["mine"] == f"beta for {FRIEND[0]}"
        assert (await words(admin))["mine"] == f"beta for {ADMIN[0]}"
    finally:
        await friend.session.close()


async def test_slow_news_shows_the_previous_view_then_says_when_the_new_one_is_ready(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await portal(make_client, settings)
    assert (await words(client))["shared"] == "alpha"
    ws = await client.ws_connect("/ws")
    await ws.send_json({"action": "subscribe", "topics": ["board.shared"]})
    assert (await ws.receive_json(timeout=5))["type"] == "subscribed"

    SOURCE.slow, SOURCE.word = 1.5, "beta"
    await announce(client, "board.shared")
    assert (await ws.receive_json(timeout=5))["topic"] == "board.shared"
    # The new view takes longer than viewers wait: they get the previous one meanwhile...
    started = time.monotonic()
    assert (await words(client))["shared"] == "alpha"
    assert time.monotonic() - started < 1.0
    # ...and open dashboards hear again, from this process, once the new one is ready.
    again = await ws.receive_json(timeout=5)
    assert again["topic"] == "board.shared"
    assert (await words(client))["shared"] == "beta"
    await ws.close()


async def test_data_that_is_not_json_shows_the_tile_as_unavailable(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await portal(make_client, settings)
    shown = await words(client)
    assert shown["odd"] == "Odd could not be shown: its data is not JSON"
    assert shown["shared"] == "alpha"
    assert (await client.get("/", headers={"Accept": "text/html"})).status == 200


@hookimpl
def register_shared_widget() -> list[Widget]:
    return [Widget("shared", "Shared", "word.html", load_shared, topic="board.shared")]


# Only widgets kept until their topic announces a change: the page can stand as it is.
STEADY = SimpleNamespace(
    register_widgets=register_shared_widget,
    register_ws_topics=register_ws_topics,
    register_template_dirs=register_template_dirs,
)


async def test_a_kept_dashboard_page_shows_every_change_of_its_tiles_bell_and_session(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(settings, extra_plugins=[("board", STEADY)])
    assert (await client.post("/api/v1/plugins/board/enable")).status == 200

    async def page() -> str:
        resp = await client.get("/", headers={"Accept": "text/html"})
        assert resp.status == 200 and resp.content_type == "text/html"
        assert resp.charset == "utf-8"
        return await resp.text()

    first = await page()
    assert '<p class="word">alpha</p>' in first and await page() == first

    # A tile changes.
    SOURCE.word = "beta"
    await announce(client, "board.shared")
    await wait_for(lambda: _shows(page, '<p class="word">beta</p>'))

    # The bell: one unread notification.
    assert "data-unread-count hidden>0</span>" in await page()
    me = await (await client.get("/api/v1/auth/me")).json()
    notice = Notice(kind="MEDIA_AVAILABLE", subject="The Matrix (1999)")
    await client.app[NOTIFIER].send(notice, [uuid.UUID(me["id"])])
    assert "data-unread-count>1</span>" in await page()

    # Another session of the same user has its own CSRF token.
    csrf = me["csrf_token"]
    assert f'content="{csrf}"' in await page()
    assert (await client.post("/logout", data={"csrf_token": csrf})).status == 200
    await client.sign_in(*ADMIN)
    again = client.csrf
    assert again != csrf
    shown = await page()
    assert f'content="{again}"' in shown and csrf not in shown

    # The integration switched off: its tile is gone.
    assert '<p class="word">beta</p>' in shown
    assert (await client.post("/api/v1/plugins/board/disable")).status == 200
    assert '<p class="word">' not in await page()


async def _shows(page: Callable[[], Awaitable[str]], words: str) -> bool:
    return words in await page()
