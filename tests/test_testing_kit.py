"""The plugin authors' test kit drives a built-in integration as a plugin's tests would: a
portal on loopback, an admin, settings tried for real, a websocket, a poller round on demand."""

from __future__ import annotations

from pathlib import Path

from medianest.testing import FakeTautulli, Portal


async def test_a_round_on_demand_announces_what_changed_at_once(tmp_path: Path) -> None:
    async with FakeTautulli() as tautulli, Portal(tmp_path) as portal:
        admin = await portal.admin()
        await admin.configure("tautulli", {"url": tautulli.url, "api_key": tautulli.apikey})
        await portal.poll("tautulli")
        events = await admin.subscribe("tautulli.activity")
        before = tautulli.commands["get_activity"]

        tautulli.start_stream("mediaowner", "Inception", progress_percent=12)
        # The activity is read every 10 s at the quickest; the round on demand does not wait.
        await portal.poll("tautulli")
        assert tautulli.commands["get_activity"] == before + 1
        event = await events.next("tautulli.activity", "updated", within=5)
        streams = event["data"]["streams"]

        # Asked again with nothing changed: the service is asked, nothing is announced (the
        # next event the page gets is the next change's).
        await portal.poll("tautulli")
        assert tautulli.commands["get_activity"] == before + 2
        tautulli.start_stream("mediaowner", "Inception", progress_percent=50)
        await portal.poll("tautulli")
        event = await events.next("tautulli.activity", within=5)
        assert event["data"]["streams"] == streams + 1


async def test_bad_settings_are_refused_with_the_services_reason(tmp_path: Path) -> None:
    async with FakeTautulli() as tautulli, Portal(tmp_path) as portal:
        admin = await portal.admin()
        refused = await admin.refusal("tautulli", {"url": tautulli.url, "api_key": "0" * 32})
        assert refused.status == 422
        assert refused.details
        assert await admin.saved_settings("tautulli") == {}


async def test_a_user_of_the_kit_is_not_an_admin(tmp_path: Path) -> None:
    async with Portal(tmp_path) as portal:
        friend = await portal.user("friend")
        assert (await friend.get("/api/v1/plugins")).status == 403
        me = await (await friend.get("/api/v1/auth/me")).json()
        assert me["username"] == "friend"
        assert me["role"] == "user"
