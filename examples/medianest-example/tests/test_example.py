"""The example plugin inside a real MediaNest: enable it, read the greeting, send a ping.

Only MediaNest's test kit (``medianest.testing``) is used: no part of MediaNest's internals.
"""

from __future__ import annotations

from pathlib import Path

from medianest_example.models import Ping
from sqlalchemy import select

from medianest.testing import Portal


async def test_enabled_plugin_greets_and_pings(tmp_path: Path) -> None:
    async with Portal(tmp_path) as portal:
        # A visitor who has not signed in is sent to the sign-in page.
        anonymous = await portal.anonymous()
        answer = await anonymous.get("/example/hello", allow_redirects=False)
        assert answer.status == 303
        assert answer.headers["Location"] == "/login?next=/example/hello"

        admin = await portal.admin()
        # Installed plugins start disabled: their routes do not exist yet.
        assert (await admin.get("/example/hello")).status == 404

        await admin.configure("example", {"greeting": "Hi from the tests"})
        hello = await admin.get("/example/hello")
        assert await hello.json() == {"greeting": "Hi from the tests"}

        events = await admin.subscribe("example.pings")
        pinged = await admin.post("/example/ping", json={"message": "anyone there?"})
        assert pinged.status == 200, await pinged.text()
        event = await events.next("example.pings", "ping")
        assert event["data"]["message"] == "anyone there?"
        assert event["data"]["count"] == 1

        dashboard = await (await admin.get("/")).text()
        assert "Hi from the tests" in dashboard
        assert "anyone there?" in dashboard

        refused = await admin.post("/example/ping", json={"message": ""})
        assert refused.status == 422

        # The pings are kept in the plugin's own table (created at start, by its migration).
        pinged = await admin.post("/example/ping", json={"message": "still there?"})
        assert (await pinged.json())["count"] == 2
        listed = await (await admin.get("/example/pings")).json()
        assert listed["total"] == 2
        assert [p["message"] for p in listed["pings"]] == ["still there?", "anyone there?"]


async def test_a_greeting_too_long_is_refused_and_the_saved_one_kept(tmp_path: Path) -> None:
    async with Portal(tmp_path) as portal:
        admin = await portal.admin()
        await admin.configure("example", {"greeting": "Hello"})
        refused = await admin.refusal("example", {"greeting": "x" * 1000})
        assert refused.status == 422
        assert [d["field"] for d in refused.details] == ["greeting"]
        assert (await admin.saved_settings("example"))["greeting"] == "Hello"


async def test_a_user_reads_the_greeting_but_cannot_switch_the_plugin(tmp_path: Path) -> None:
    async with Portal(tmp_path) as portal:
        admin = await portal.admin()
        await admin.configure("example", {"greeting": "Hello"})
        friend = await portal.user("friend")
        assert await (await friend.get("/example/hello")).json() == {"greeting": "Hello"}
        assert (await friend.post("/api/v1/plugins/example/disable")).status == 403


async def test_the_pings_are_in_the_plugins_own_table_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    async with Portal(tmp_path) as portal:
        admin = await portal.admin()
        await admin.enable("example")
        await admin.post("/example/ping", json={"message": "before the restart"})
        async with portal.db.connect() as conn:
            rows = (await conn.execute(select(Ping.message))).scalars().all()
        assert rows == ["before the restart"]

    async with Portal(tmp_path) as again:
        admin = await again.admin()
        listed = await (await admin.get("/example/pings")).json()
        assert listed["total"] == 1
        assert listed["pings"][0]["message"] == "before the restart"


async def test_sending_pings_needs_the_plugins_own_permission(tmp_path: Path) -> None:
    async with Portal(tmp_path) as portal:
        admin = await portal.admin()
        await admin.enable("example")
        permissions = await (await admin.get("/api/v1/permissions")).json()
        mine = [p for p in permissions["permissions"] if p["declared_by"] == "example"]
        assert [(p["name"], p["default"]) for p in mine] == [("example_ping", True)]

        # A user without it may read the pings, not send one.
        guest = await portal.user("guest", permissions=[])
        refused = await guest.post("/example/ping", json={"message": "hi"})
        assert refused.status == 403
        assert "Send example pings" in await refused.text()
        assert (await guest.get("/example/pings")).status == 200
