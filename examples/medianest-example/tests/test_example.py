"""The example plugin inside a real MediaNest app: enable it, read the greeting, send a ping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medianest_example.models import Ping
from sqlalchemy import select

from medianest.app import create_app
from medianest.core.auth import create_local_user
from medianest.core.keys import ENGINE
from medianest.core.settings import load_settings


async def sign_in_as_admin(client: Any) -> dict[str, str]:
    """Create a local administrator, sign in as them and return the headers that state
    changes need (MediaNest refuses a cookie-authenticated POST without its CSRF token)."""
    await create_local_user(client.app[ENGINE], "admin", "correct horse battery", role="admin")
    login = {"username": "admin", "password": "correct horse battery"}
    assert (await client.post("/api/v1/auth/login", json=login)).status == 200
    me = await (await client.get("/api/v1/auth/me")).json()
    return {"X-CSRF-Token": me["csrf_token"]}


async def test_enabled_plugin_greets_and_pings(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/medianest.db", redis_url=None
    )
    client = await aiohttp_client(await create_app(settings))
    # A visitor who has not signed in is sent to the sign-in page.
    anonymous = await client.get("/example/hello", allow_redirects=False)
    assert anonymous.status == 303
    assert anonymous.headers["Location"] == "/login?next=/example/hello"
    csrf = await sign_in_as_admin(client)

    # Installed plugins start disabled: their routes do not exist yet.
    assert (await client.get("/example/hello")).status == 404

    enabled = await client.post("/api/v1/plugins/example/enable", headers=csrf)
    assert enabled.status == 200, await enabled.text()
    assert (await enabled.json())["status"] == "active"

    saved = await client.put(
        "/api/v1/plugins/example/settings", json={"greeting": "Hi from the tests"}, headers=csrf
    )
    assert saved.status == 200, await saved.text()
    hello = await client.get("/example/hello")
    assert await hello.json() == {"greeting": "Hi from the tests"}

    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["example.pings"]})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        pinged = await client.post("/example/ping", json={"message": "anyone there?"}, headers=csrf)
        assert pinged.status == 200, await pinged.text()
        event = await ws.receive_json(timeout=5)
    assert event["topic"] == "example.pings"
    assert event["data"]["message"] == "anyone there?"
    assert event["data"]["count"] == 1

    dashboard = await (await client.get("/")).text()
    assert "Hi from the tests" in dashboard
    assert "anyone there?" in dashboard

    refused = await client.post("/example/ping", json={"message": ""}, headers=csrf)
    assert refused.status == 422

    # The pings are kept in the plugin's own table (created at start, by its migration).
    pinged = await client.post("/example/ping", json={"message": "still there?"}, headers=csrf)
    assert (await pinged.json())["count"] == 2
    listed = await (await client.get("/example/pings")).json()
    assert listed["total"] == 2
    assert [p["message"] for p in listed["pings"]] == ["still there?", "anyone there?"]


async def test_the_pings_are_in_the_plugins_own_table_and_survive_a_restart(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/medianest.db", redis_url=None
    )
    client = await aiohttp_client(await create_app(settings))
    csrf = await sign_in_as_admin(client)
    await client.post("/api/v1/plugins/example/enable", headers=csrf)
    await client.post("/example/ping", json={"message": "before the restart"}, headers=csrf)
    async with client.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(Ping.message))).scalars().all()
    assert rows == ["before the restart"]
    await client.close()

    again = await aiohttp_client(await create_app(settings))
    login = {"username": "admin", "password": "correct horse battery"}
    assert (await again.post("/api/v1/auth/login", json=login)).status == 200
    listed = await (await again.get("/example/pings")).json()
    assert listed["total"] == 1
    assert listed["pings"][0]["message"] == "before the restart"


async def test_sending_pings_needs_the_plugins_own_permission(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/medianest.db", redis_url=None
    )
    client = await aiohttp_client(await create_app(settings))
    csrf = await sign_in_as_admin(client)
    await client.post("/api/v1/plugins/example/enable", headers=csrf)
    permissions = await (await client.get("/api/v1/permissions")).json()
    mine = [p for p in permissions["permissions"] if p["declared_by"] == "example"]
    assert [(p["name"], p["default"]) for p in mine] == [("example_ping", True)]

    # A user without it may read the pings, not send one.
    await create_local_user(client.app[ENGINE], "guest", "a long password", permissions=[])
    guest = await aiohttp_client(client.server)
    login = {"username": "guest", "password": "a long password"}
    assert (await guest.post("/api/v1/auth/login", json=login)).status == 200
    me = await (await guest.get("/api/v1/auth/me")).json()
    headers = {"X-CSRF-Token": me["csrf_token"]}
    refused = await guest.post("/example/ping", json={"message": "hi"}, headers=headers)
    assert refused.status == 403
    assert "Send example pings" in await refused.text()
    assert (await guest.get("/example/pings")).status == 200
