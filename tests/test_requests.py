"""The rules of requests: validation, duplicates, quotas, permissions, illegal moves,
auto-approval, fulfilment failures and retry, lists with filters, deleting, notifications."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import ADMIN, MakeClient, wait_for
from request_world import FILM, SERIES, second_browser, tuned, world
from sqlalchemy import select

from medianest import Availability, SeasonAvailability, hookimpl
from medianest.core.keys import ENGINE
from medianest.core.settings import Settings
from medianest.requests.models import Approval, MediaAvailability
from medianest.testing import FakeTMDB

FILM_BODY = {"media_type": "movie", "tmdb_id": FILM}


async def ask(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/requests", json=body)
    return resp.status, await resp.json()


async def message(resp: Any) -> str:
    return str((await resp.json())["error"]["message"])


async def status_is(client: Any, request_id: str, status: str) -> bool:
    found = await (await client.get(f"/api/v1/requests/{request_id}")).json()
    return bool(found["status"] == status)


@pytest.mark.usefixtures("fast")
async def test_bad_requests_are_refused_with_a_message_and_nothing_is_stored(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings), plugins=("tmdb",)) as w:
        cases = [
            ({"media_type": "movie", "tmdb_id": FILM, "colour": "red"}, 422, "not valid"),
            ({"media_type": "movie", "tmdb_id": str(FILM)}, 422, "not valid"),
            ({"media_type": "book", "tmdb_id": FILM}, 422, "not valid"),
            ({"media_type": "movie", "tmdb_id": -3}, 422, "not valid"),
            ({"media_type": "movie", "tmdb_id": 99999}, 404, "TMDB has no film with the id 99999"),
            (
                {"media_type": "movie", "tmdb_id": FILM, "seasons": [1]},
                422,
                "A film has no seasons",
            ),
            ({"media_type": "tv", "tmdb_id": SERIES}, 422, "Say which seasons"),
            (
                {"media_type": "tv", "tmdb_id": SERIES, "seasons": [1, 40]},
                422,
                "no season 40; it has seasons 1, 2, 3",
            ),
        ]
        for body, status, text in cases:
            resp = await w.friend.post("/api/v1/requests", json=body)
            assert resp.status == status, (body, await resp.text())
            assert text in await message(resp), body
        raw = await w.friend.post(
            "/api/v1/requests", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert raw.status == 400
        listed = await (await w.friend.get("/api/v1/requests")).json()
        assert listed["total"] == 0

        # Without TMDB, nothing can be looked up: a clear 503, not a 500.
        assert (await w.admin.post("/api/v1/plugins/tmdb/disable")).status == 200
        resp = await w.friend.post("/api/v1/requests", json=FILM_BODY)
        assert resp.status == 503
        assert "the tmdb integration is off or not answering" in await message(resp)


@pytest.mark.usefixtures("fast")
async def test_quotas_are_shown_and_enforced_per_user(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    settings = tuned(sqlite_settings, quota_movies=1, quota_seasons=2, quota_seasons_days=30)
    async with world(make_client, settings, plugins=("tmdb",)) as w:
        quota = await (await w.friend.get("/api/v1/requests/quota")).json()
        assert quota["movies"] == {"limit": 1, "days": 7, "used": 0, "remaining": 1}
        assert quota["seasons"]["remaining"] == 2 and quota["seasons"]["days"] == 30

        assert (await ask(w.friend, FILM_BODY))[0] == 201
        status, answer = await ask(w.friend, {"media_type": "movie", "tmdb_id": 27205})
        assert status == 403
        assert answer["error"]["message"] == (
            "This would go over your quota of 1 films in 7 days: you have 0 left."
        )
        status, answer = await ask(
            w.friend, {"media_type": "tv", "tmdb_id": SERIES, "seasons": [1, 2, 3]}
        )
        assert status == 403 and "asked for 3" in answer["error"]["message"]
        # The page says how much is left before the limit is hit.
        page = await (await w.friend.get(f"/media/tv/{SERIES}")).text()
        assert "Films: 0 of 1 left in 7 days." in page
        assert "Seasons: 2 of 2 left in 30 days." in page

        # A user's own quota, set on the users admin, wins over the default.
        me = await (await w.friend.get("/api/v1/auth/me")).json()
        resp = await w.admin.patch(
            f"/api/v1/users/{me['id']}", json={"quotas": {"movies": {"limit": 3, "days": 7}}}
        )
        assert resp.status == 200, await resp.text()
        await w.friend.sign_in("friend", "a friend's long password")
        assert (await ask(w.friend, {"media_type": "movie", "tmdb_id": 27205}))[0] == 201
        quota = await (await w.friend.get("/api/v1/requests/quota")).json()
        assert quota["movies"] == {"limit": 3, "days": 7, "used": 2, "remaining": 1}
        # A declined request gives its place back.
        mine = await (await w.friend.get("/api/v1/requests")).json()
        first = mine["items"][-1]["id"]
        assert (await w.admin.post(f"/api/v1/requests/{first}/decline", json={})).status == 200
        quota = await (await w.friend.get("/api/v1/requests/quota")).json()
        assert quota["movies"]["used"] == 1


@pytest.mark.usefixtures("fast")
async def test_only_legal_moves_are_made_and_each_is_recorded(
    make_client: MakeClient, db_settings: Settings
) -> None:
    async with world(make_client, tuned(db_settings), plugins=("tmdb",)) as w:
        _, created = await ask(w.friend, FILM_BODY)
        request_id = created["request"]["id"]
        # A plain user may not decide.
        resp = await w.friend.post(f"/api/v1/requests/{request_id}/approve", json={})
        assert resp.status == 403
        # Retrying a request that has not failed is refused and changes nothing.
        resp = await w.admin.post(f"/api/v1/requests/{request_id}/retry", json={})
        assert resp.status == 409
        assert await message(resp) == (
            "Cannot retry a request that is waiting for approval; "
            "only a request that is failed can be."
        )
        resp = await w.admin.post(
            f"/api/v1/requests/{request_id}/decline", json={"comment": "Not now"}
        )
        assert resp.status == 200
        declined = await resp.json()
        assert declined["status"] == "declined" and declined["reason"] == "Not now"
        for action in ("approve", "decline", "retry"):
            resp = await w.admin.post(f"/api/v1/requests/{request_id}/{action}", json={})
            assert resp.status == 409, action
            assert "a request that is declined" in await message(resp)
        # Unknown requests are a 404 with a message; a malformed id too.
        resp = await w.admin.post(
            "/api/v1/requests/00000000-0000-0000-0000-000000000000/approve", json={}
        )
        assert resp.status == 404
        assert (await w.admin.get("/api/v1/requests/not-a-uuid")).status == 404

        async with w.app[ENGINE].connect() as conn:
            rows = (
                await conn.execute(
                    select(Approval.status, Approval.comments).order_by(Approval.approved_at)
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("pending", "Requested the film."),
            ("declined", "Not now"),
        ]


@pytest.mark.usefixtures("fast")
async def test_auto_approved_requests_go_straight_to_radarr(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings)) as w:
        trusted = await second_browser(
            w.admin,
            "trusted",
            "a trusted long password",
            permissions=frozenset({"request_movies", "request_tv", "auto_approve"}),
        )
        status, created = await ask(trusted, FILM_BODY)
        assert status == 201 and created["request"]["status"] == "approved"
        request_id = created["request"]["id"]
        await wait_for(lambda: status_is(w.admin, request_id, "processing"), seconds=10)
        assert [m["tmdbId"] for m in w.radarr.added_movies] == [FILM]
        # The admins were told it was approved automatically.
        notes = await (await w.admin.get("/api/v1/notifications")).json()
        assert notes["items"][0]["kind"] == "MEDIA_AUTO_APPROVED"


@pytest.mark.usefixtures("fast")
async def test_a_failed_fulfilment_keeps_the_request_with_its_reason_until_a_retry(
    make_client: MakeClient, db_settings: Settings
) -> None:
    async with world(make_client, tuned(db_settings)) as w:
        _, created = await ask(w.friend, FILM_BODY)
        request_id = created["request"]["id"]
        w.radarr.faults.status = 503
        assert (await w.admin.post(f"/api/v1/requests/{request_id}/approve", json={})).status == 200
        await wait_for(lambda: status_is(w.friend, request_id, "failed"), seconds=15)
        failed = await (await w.friend.get(f"/api/v1/requests/{request_id}")).json()
        assert failed["reason"].startswith("Could not add The Matrix Reloaded (2003)")
        notes = await (await w.friend.get("/api/v1/notifications")).json()
        assert notes["items"][0]["kind"] == "MEDIA_FAILED"

        w.radarr.faults.clear()
        resp = await w.admin.post(f"/api/v1/requests/{request_id}/retry", json={})
        assert resp.status == 200 and (await resp.json())["status"] == "approved"
        await wait_for(lambda: status_is(w.friend, request_id, "processing"), seconds=10)
        assert [m["tmdbId"] for m in w.radarr.added_movies] == [FILM]
        again = await (await w.friend.get(f"/api/v1/requests/{request_id}")).json()
        assert again["reason"] is None
        assert [h["status"] for h in again["history"]] == [
            "pending",
            "approved",
            "failed",
            "approved",
            "processing",
        ]


@pytest.mark.usefixtures("fast")
async def test_without_radarr_a_request_fails_saying_what_to_set_up(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings), plugins=("tmdb",)) as w:
        _, created = await ask(w.friend, FILM_BODY)
        request_id = created["request"]["id"]
        assert (await w.admin.post(f"/api/v1/requests/{request_id}/approve", json={})).status == 200
        await wait_for(lambda: status_is(w.friend, request_id, "failed"), seconds=10)
        failed = await (await w.friend.get(f"/api/v1/requests/{request_id}")).json()
        # The integration that could have, as the Integrations page names it: the words of
        # MediaNest's own name no service.
        assert failed["reason"] == (
            "Nothing can fulfil film requests: an admin can set up the arr integration under "
            "Integrations, then retry."
        )


@pytest.mark.usefixtures("fast")
async def test_lists_filter_sort_and_page_and_people_see_only_their_own(
    make_client: MakeClient, db_settings: Settings
) -> None:
    async with world(make_client, tuned(db_settings, quota_movies=20), plugins=("tmdb",)) as w:
        other = await second_browser(w.admin, "other", "another long password")
        for tmdb_id in (FILM, 27205, 157336):
            assert (await ask(w.friend, {"media_type": "movie", "tmdb_id": tmdb_id}))[0] == 201
        status, theirs = await ask(other, {"media_type": "tv", "tmdb_id": SERIES, "seasons": [1]})
        assert status == 201
        mine = await (await w.friend.get("/api/v1/requests")).json()
        assert mine["total"] == 3 and {r["requested_by"]["username"] for r in mine["items"]} == {
            "friend"
        }
        # Another's request is not there for them, not even by id.
        resp = await w.friend.get(f"/api/v1/requests/{theirs['request']['id']}")
        assert resp.status == 404
        assert (await w.friend.get("/api/v1/requests?scope=all")).status == 403

        everyone = await (await w.admin.get("/api/v1/requests?scope=all&per_page=2")).json()
        assert everyone["total"] == 4 and everyone["pages"] == 2 and len(everyone["items"]) == 2
        assert everyone["items"][0]["title"] == "Game of Thrones"  # newest first
        assert everyone["counts"]["pending"] == 4
        second = await (await w.admin.get("/api/v1/requests?scope=all&per_page=2&page=2")).json()
        seen = {r["id"] for r in everyone["items"]} | {r["id"] for r in second["items"]}
        assert len(seen) == 4
        films = await (await w.admin.get("/api/v1/requests?scope=all&type=movie&sort=title")).json()
        assert [r["title"] for r in films["items"]] == [
            "Inception",
            "Interstellar",
            "The Matrix Reloaded",
        ]
        # Bulk approval answers each id on its own.
        ids = [r["id"] for r in films["items"][:2]]
        bulk = await w.admin.post(
            "/api/v1/requests/approve", json={"ids": [*ids, "00000000-0000-0000-0000-000000000000"]}
        )
        results = (await bulk.json())["results"]
        assert [r["ok"] for r in results] == [True, True, False]
        assert "There is no request" in results[2]["error"]
        approved = await (
            await w.admin.get("/api/v1/requests?scope=all&status=approved,failed")
        ).json()
        assert {r["id"] for r in approved["items"]} == set(ids)
        bad = await w.admin.get("/api/v1/requests?scope=all&status=lost")
        assert bad.status == 422 and "Unknown status lost" in await message(bad)
        by_other = await (await w.admin.get("/api/v1/requests?scope=all&user=other")).json()
        assert [r["title"] for r in by_other["items"]] == ["Game of Thrones"]
        bad = await w.admin.get("/api/v1/requests?scope=all&user=nobody")
        assert bad.status == 422 and "There is no user 'nobody'" in await message(bad)
        bad = await w.admin.get("/api/v1/requests?sort=colour")
        assert bad.status == 422
        # The page lists them too, with filters applied.
        page = await (await w.admin.get("/requests?scope=all&type=tv")).text()
        assert "Game of Thrones" in page and "Inception" not in page


@pytest.mark.usefixtures("fast")
async def test_withdrawing_and_removing_requests(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings), plugins=("tmdb",)) as w:
        _, first = await ask(w.friend, FILM_BODY)
        _, second = await ask(w.friend, {"media_type": "movie", "tmdb_id": 27205})
        resp = await w.friend.delete(f"/api/v1/requests/{first['request']['id']}")
        assert resp.status == 200
        assert (
            await w.admin.post(f"/api/v1/requests/{second['request']['id']}/approve", json={})
        ).status == 200
        resp = await w.friend.delete(f"/api/v1/requests/{second['request']['id']}")
        assert resp.status == 409 and "only a pending request can be withdrawn" in await message(
            resp
        )
        resp = await w.admin.delete(f"/api/v1/requests/{second['request']['id']}")
        assert resp.status == 200
        listed = await (await w.friend.get("/api/v1/requests")).json()
        assert listed["total"] == 0
        # What was withdrawn can be asked for again.
        assert (await ask(w.friend, FILM_BODY))[0] == 201


@pytest.mark.usefixtures("fast")
async def test_notifications_are_listed_and_marked_read(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings), plugins=("tmdb",)) as w:
        _, created = await ask(w.friend, FILM_BODY)
        admin_notes = await (await w.admin.get("/api/v1/notifications")).json()
        assert admin_notes["unread"] == 1
        assert admin_notes["items"][0]["subject"] == "The Matrix Reloaded (2003)"
        assert admin_notes["items"][0]["message"] == "friend asked for it."
        page = await (await w.admin.get("/")).text()
        assert "data-unread-count>1</span>" in page
        await w.admin.post(f"/api/v1/requests/{created['request']['id']}/decline", json={})
        friend_notes = await (await w.friend.get("/api/v1/notifications")).json()
        assert friend_notes["unread"] == 1
        resp = await w.friend.post("/api/v1/notifications/read", json={})
        assert (await resp.json()) == {"marked": 1, "unread": 0}
        resp = await w.friend.post("/api/v1/notifications/read", json={"ids": ["x"]})
        assert resp.status == 422


@pytest.mark.usefixtures("fast")
async def test_someone_made_a_manager_hears_of_the_next_request_at_once(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings), plugins=("tmdb",)) as w:
        helper = await second_browser(w.admin, "helper", "a helper's long password")
        # The managers are known (and kept) from the first request on.
        assert (await ask(w.friend, FILM_BODY))[0] == 201
        assert (await (await helper.get("/api/v1/notifications")).json())["unread"] == 0

        me = await (await helper.get("/api/v1/auth/me")).json()
        resp = await w.admin.patch(
            f"/api/v1/users/{me['id']}", json={"permissions": ["request_movies", "manage_requests"]}
        )
        assert resp.status == 200, await resp.text()
        assert (await ask(w.friend, {"media_type": "movie", "tmdb_id": 693134}))[0] == 201
        notes = await (await helper.get("/api/v1/notifications")).json()
        assert notes["unread"] == 1
        assert notes["items"][0]["subject"] == "Dune: Part Two (2024)"

        # And no longer once that permission is taken away.
        resp = await w.admin.patch(
            f"/api/v1/users/{me['id']}", json={"permissions": ["request_movies"]}
        )
        assert resp.status == 200, await resp.text()
        body = {"media_type": "tv", "tmdb_id": SERIES, "seasons": [1]}
        assert (await ask(w.friend, body))[0] == 201
        assert (await (await helper.get("/api/v1/notifications")).json())["unread"] == 1


@pytest.mark.usefixtures("fast")
async def test_two_people_asking_at_the_same_moment_make_one_request(
    make_client: MakeClient, db_settings: Settings
) -> None:
    async with world(make_client, tuned(db_settings), plugins=("tmdb",)) as w:
        other = await second_browser(w.admin, "other", "another long password")
        answers = await asyncio.gather(*(ask(c, FILM_BODY) for c in (w.friend, other) * 3))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [201, 409, 409, 409, 409, 409]
        listed = await (await w.admin.get("/api/v1/requests?scope=all")).json()
        assert listed["total"] == 1


@pytest.mark.usefixtures("fast")
async def test_live_request_news_reaches_only_those_it_concerns(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with world(make_client, tuned(sqlite_settings), plugins=("tmdb",)) as w:
        other = await second_browser(w.admin, "other", "another long password")
        snoop = await other.ws_connect("/ws")
        await snoop.send_json({"action": "subscribe", "topics": ["requests", "me"]})
        assert (await snoop.receive_json(timeout=2))["type"] == "subscribed"
        admin_ws = await w.admin.ws_connect("/ws")
        await admin_ws.send_json({"action": "subscribe", "topics": ["requests"]})
        assert (await admin_ws.receive_json(timeout=2))["type"] == "subscribed"
        _, created = await ask(w.friend, FILM_BODY)
        heard = await admin_ws.receive_json(timeout=5)
        assert heard["event"] == "created" and heard["data"]["id"] == created["request"]["id"]
        # Someone else's request is none of another plain user's business.
        with pytest.raises(asyncio.TimeoutError):
            await snoop.receive_json(timeout=1)
        await snoop.close()
        await admin_ws.close()


class AtticServer:
    """A media server of another kind than Plex: it holds The Matrix Reloaded (FILM) and the
    first season of Game of Thrones, and says what it is called (or, as "shed", says nothing
    and is named by its server's name)."""

    def __init__(self, name: str, service: str) -> None:
        self.name, self.service = name, service

    @hookimpl
    def check_availability(self, ids: Mapping[str, str], media_type: str) -> Availability:
        held = (media_type, ids.get("tmdb")) in {("movie", str(FILM)), ("tv", str(SERIES))}
        return Availability(
            source=self.name,
            server_id=f"{self.name}-1",
            server_name=f"The {self.name} box",
            media_type=media_type,
            available=held,
            seasons={1: SeasonAvailability(10, 10)} if held and media_type == "tv" else {},
            service=self.service,
        )


async def test_another_media_server_is_named_as_its_plugin_says(
    make_client: MakeClient, sqlite_settings: Settings
) -> None:
    async with FakeTMDB() as tmdb:
        admin = await make_client(
            tuned(sqlite_settings), [("attic", AtticServer("attic", "Attic Media"))]
        )
        body = {"api_key": tmdb.api_key, "api_url": tmdb.url}
        assert (await admin.put("/api/v1/plugins/tmdb/settings", json=body)).status == 200
        for plugin in ("tmdb", "attic"):
            assert (await admin.post(f"/api/v1/plugins/{plugin}/enable")).status == 200

        film = await (await admin.get(f"/api/v1/media/movie/{FILM}")).json()
        assert film["status"] == {
            "state": "available",
            "text": "Available in Attic Media",
            "requested_by": None,
            "request_status": None,
            "available_seasons": [],
        }
        series = await (await admin.get(f"/api/v1/media/tv/{SERIES}")).json()
        assert series["status"]["text"] == "In Attic Media: season 1"
        assert [s["text"] for s in series["seasons"]][:2] == ["Available", "Not in Attic Media"]
        other = await (await admin.get("/api/v1/media/status?ids=movie:27205")).json()
        assert other["statuses"]["movie:27205"]["text"] == "Not in Attic Media yet"
        # A request for what it holds is refused naming the server itself.
        resp = await admin.post("/api/v1/requests", json=FILM_BODY)
        assert resp.status == 409
        assert await message(resp) == "The Matrix Reloaded is already available in The attic box."
        search = await (await admin.get("/search", params={"q": "Matrix"})).text()
        assert "Available in Attic Media" in search and "Plex" not in search

        # What it said of a requested series is kept, its service with it.
        asked = {"media_type": "tv", "tmdb_id": SERIES, "seasons": [2]}
        assert (await admin.post("/api/v1/requests", json=asked)).status == 201
        async with admin.app[ENGINE].connect() as conn:
            kept = (await conn.execute(select(MediaAvailability.service))).scalars().all()
        assert set(kept) == {"Attic Media"}

        # A plugin that names no service: its server's name is shown.
        assert (await admin.post("/api/v1/plugins/attic/disable")).status == 200
        shed = await make_client(
            tuned(sqlite_settings), [("shed", AtticServer("shed", ""))], sign_in=False
        )
        await shed.sign_in(*ADMIN)
        assert (await shed.post("/api/v1/plugins/shed/enable")).status == 200
        film = await (await shed.get(f"/api/v1/media/movie/{FILM}")).json()
        assert film["status"]["text"] == "Available in The shed box"
        # No media server at all: nothing to name.
        assert (await shed.post("/api/v1/plugins/shed/disable")).status == 200
        film = await (await shed.get(f"/api/v1/media/movie/{FILM}")).json()
        assert film["status"]["text"] == "Not available yet"
