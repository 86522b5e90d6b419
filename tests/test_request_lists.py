"""Request lists are kept between changes, and a change shows in the very next list: the one
who made it sees it, every other viewer sees it, and so does another process of the same
installation."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeClient
from request_world import FILM, second_browser, tuned, world

from medianest.core.settings import Settings

ALL = "/api/v1/requests?scope=all"


async def listed(client: Any, url: str) -> dict[str, Any]:
    resp = await client.get(url)
    assert resp.status == 200, await resp.text()
    found: dict[str, Any] = await resp.json()
    return found


def titles(found: dict[str, Any]) -> list[str]:
    return [item["title"] for item in found["items"]]


@pytest.mark.usefixtures("fast")
async def test_every_change_shows_in_the_next_list(
    make_client: MakeClient, db_settings: Settings
) -> None:
    async with world(make_client, tuned(db_settings), plugins=("tmdb",)) as w:
        other = await second_browser(w.admin, "other", "another long password")
        # Lists read (and kept) before anything changes.
        assert (await listed(w.friend, "/api/v1/requests"))["total"] == 0
        assert (await listed(w.admin, ALL + "&status=pending"))["total"] == 0
        assert (await listed(other, "/api/v1/requests"))["total"] == 0

        resp = await w.friend.post(
            "/api/v1/requests", json={"media_type": "movie", "tmdb_id": FILM}
        )
        assert resp.status == 201
        request_id = (await resp.json())["request"]["id"]
        mine = await listed(w.friend, "/api/v1/requests")
        assert titles(mine) == ["The Matrix Reloaded"] and mine["counts"]["pending"] == 1
        pending = await listed(w.admin, ALL + "&status=pending")
        assert titles(pending) == ["The Matrix Reloaded"]
        # Someone else's request is still not in another plain user's list.
        assert (await listed(other, "/api/v1/requests"))["total"] == 0
        assert "The Matrix Reloaded" not in await (await other.get("/requests")).text()

        resp = await w.admin.post(f"/api/v1/requests/{request_id}/decline", json={"comment": "No"})
        assert resp.status == 200
        assert (await listed(w.admin, ALL + "&status=pending"))["total"] == 0
        mine = await listed(w.friend, "/api/v1/requests")
        assert mine["items"][0]["status"] == "declined" and mine["items"][0]["reason"] == "No"
        assert "declined" in await (await w.friend.get("/requests")).text()

        assert (await w.admin.delete(f"/api/v1/requests/{request_id}")).status == 200
        assert (await listed(w.friend, "/api/v1/requests"))["total"] == 0
        assert (await listed(w.admin, ALL))["total"] == 0


@pytest.mark.redis
@pytest.mark.usefixtures("fast")
async def test_a_change_made_on_one_process_shows_in_the_next_list_on_another(
    make_client: MakeClient, sqlite_settings: Settings, redis_url: str
) -> None:
    shared = tuned(sqlite_settings, redis_url=redis_url)
    async with world(make_client, shared, plugins=("tmdb",)) as w:
        # A second process of the same installation: same database, same Redis.
        b = await make_client(shared)
        assert (await listed(b, ALL))["total"] == 0
        assert (await listed(w.admin, ALL))["total"] == 0

        resp = await w.friend.post(
            "/api/v1/requests", json={"media_type": "movie", "tmdb_id": FILM}
        )
        assert resp.status == 201
        request_id = (await resp.json())["request"]["id"]
        assert titles(await listed(b, ALL)) == ["The Matrix Reloaded"]

        resp = await b.post(f"/api/v1/requests/{request_id}/approve", json={})
        assert resp.status == 200
        approved = await listed(w.admin, ALL + "&status=approved,processing,failed")
        assert titles(approved) == ["The Matrix Reloaded"]
        assert (await listed(w.admin, ALL + "&status=pending"))["total"] == 0
