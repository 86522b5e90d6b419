"""Signing out, revoking a session or disabling a user also closes their open websockets, on
every process."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType
from conftest import add_user
from sqlalchemy import update

from medianest.core.keys import ENGINE, SESSIONS
from medianest.core.models import User
from medianest.core.settings import load_settings


async def _closed(ws: Any) -> bool:
    msg = await asyncio.wait_for(ws.receive(), timeout=2)
    return msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


async def test_signing_out_closes_that_sessions_socket_only(sqlite_settings, make_client):
    admin = await make_client(sqlite_settings)
    other = await make_client(sqlite_settings)  # a second session of the same admin
    async with admin.ws_connect("/ws") as mine, other.ws_connect("/ws") as theirs:
        await mine.send_json({"action": "subscribe", "topics": ["plugins"]})
        await mine.receive_json()
        assert (await admin.post("/api/v1/auth/logout")).status == 200
        assert await _closed(mine)
        await theirs.send_json({"action": "subscribe", "topics": ["plugins"]})
        assert (await theirs.receive_json())["type"] == "subscribed"


async def test_disabling_a_user_closes_their_sockets_on_another_process(
    tmp_path, pg_url, redis_url, make_client
):
    def settings(name: str) -> Any:
        return load_settings(
            data_dir=tmp_path / name,
            database_url=pg_url,
            redis_url=redis_url,
            secret_key="one key for both processes",
        )

    a = await make_client(settings("a"))
    b = await make_client(settings("b"), sign_in=False)
    user_id = await add_user(b.app, "friend", "a long enough password")
    await b.sign_in("friend", "a long enough password")
    async with b.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
        await ws.receive_json()
        async with a.app[ENGINE].begin() as conn:
            await conn.execute(update(User).where(User.id == user_id).values(disabled=True))
        await a.app[SESSIONS].forget_cached(user_id)
        assert await _closed(ws)
    assert (await b.get("/api/v1/auth/me")).status == 401
