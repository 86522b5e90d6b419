"""Websockets at /ws: subscriptions, events, refusals, slow clients, shutdown, several processes."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from conftest import ADMIN, MakeClient, add_user
from plugins_for_tests import ProbePlugin

from medianest.app import create_app
from medianest.core.auth import SESSION_COOKIE
from medianest.core.keys import HUB, REGISTRY, TOKENS
from medianest.core.settings import Settings, load_settings

Message = dict[str, Any]


async def enable(client: TestClient, name: str) -> None:
    resp = await client.post(f"/api/v1/plugins/{name}/enable")
    assert resp.status == 200, await resp.text()


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> Message:
    msg = await ws.receive(timeout=within)
    assert msg.type is WSMsgType.TEXT, f"expected a text message, got {msg}"
    return dict(orjson.loads(msg.data))


async def receive_matching(
    ws: aiohttp.ClientWebSocketResponse, topic: str, key: str, value: Any, within: float = 2.0
) -> Message:
    """The next event on ``topic`` whose data has ``key == value``, skipping unrelated ones."""
    deadline = time.monotonic() + within
    while True:
        message = await receive(ws, max(deadline - time.monotonic(), 0.01))
        if message.get("topic") == topic and message["data"].get(key) == value:
            return message


def session_cookie(client: TestClient) -> str:
    """The signed-in client's session cookie, as a browser sends it."""
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    return f"{SESSION_COOKIE}={cookies[SESSION_COOKIE].value}"


async def publish_through_route(client: TestClient, name: str, data: Message) -> None:
    resp = await client.post(f"/api/v1/{name}/publish", json=data)
    assert resp.status == 200, await resp.text()


# --- subscriptions and events ---------------------------------------------------------------


async def test_subscribers_receive_plugin_and_core_events(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])
    await enable(client, "probe")

    async with client.ws_connect("/ws") as ws, client.ws_connect("/ws") as other:
        await ws.send_json({"action": "subscribe", "topics": ["plugins", probe.topic]})
        assert await receive(ws) == {"type": "subscribed", "topics": ["plugins", probe.topic]}
        await other.send_json({"action": "subscribe", "topics": ["plugins"]})
        assert await receive(other) == {"type": "subscribed", "topics": ["plugins"]}

        # An event a plugin publishes (here from one of its routes) reaches its subscribers,
        # in the documented shape and nothing else.
        await publish_through_route(client, "probe", {"n": 1, "text": "héllo"})
        assert await receive(ws) == {
            "topic": probe.topic,
            "event": "ping",
            "data": {"n": 1, "text": "héllo"},
        }

        # The core announces plugin changes on "plugins"; only subscribers of the plugin's
        # topic got its event, so the first thing `other` sees is the change.
        resp = await client.post("/api/v1/plugins/probe/disable")
        assert resp.status == 200
        for socket_ in (ws, other):
            changed = await receive(socket_)
            assert set(changed) == {"topic", "event", "data"}
            assert changed["topic"] == "plugins"
            assert changed["event"] == "changed"
            assert changed["data"]["name"] == "probe"
            assert changed["data"]["enabled"] is False
            assert changed["data"]["status"] == "inactive"

        await enable(client, "probe")
        changed = await receive(ws)
        assert (changed["event"], changed["data"]["status"]) == ("changed", "active")
        await publish_through_route(client, "probe", {"n": 2})
        assert (await receive(ws))["data"] == {"n": 2}

        # After unsubscribing, the plugin's events stop; the core's still come.
        await ws.send_json({"action": "unsubscribe", "topics": [probe.topic]})
        assert await receive(ws) == {"type": "unsubscribed", "topics": [probe.topic]}
        await publish_through_route(client, "probe", {"n": 3})
        await client.post("/api/v1/plugins/probe/disable")
        next_message = await receive(ws)
        assert next_message["topic"] == "plugins", f"still got {next_message}"


async def test_unknown_and_inactive_topics_are_refused(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    client = await make_client(sqlite_settings, [("probe", probe)])

    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["no-such-topic", probe.topic]})
        assert await receive(ws) == {"type": "subscribed", "topics": []}
        error = await receive(ws)
        assert error["type"] == "error"
        assert error["topics"] == ["no-such-topic", probe.topic]
        assert "no-such-topic" in error["message"]

        # A refused topic receives nothing even when the plugin publishes on it later.
        await enable(client, "probe")
        await client.app[REGISTRY].context("probe").publish(probe.topic, "ping", {"n": 1})
        await ws.send_json({"action": "subscribe", "topics": ["plugins", "nope"]})
        assert await receive(ws) == {"type": "subscribed", "topics": ["plugins"]}
        assert (await receive(ws))["topics"] == ["nope"]

        await ws.send_json({"action": "subscribe", "topics": [f"t{i}" for i in range(101)]})
        assert await receive(ws) == {"type": "subscribed", "topics": []}
        assert (await receive(ws))["type"] == "error"


async def test_malformed_messages_get_an_error_and_the_socket_stays_open(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    bad = [
        "this is not JSON",
        "[1, 2, 3]",
        '"subscribe"',
        "null",
        '{"action": "dance", "topics": ["plugins"]}',
        '{"action": "subscribe", "topics": "plugins"}',
        '{"action": "subscribe"}',
        '{"topics": ["plugins"]}',
    ]
    async with client.ws_connect("/ws") as ws:
        for text in bad:
            await ws.send_str(text)
            reply = await receive(ws)
            assert reply["type"] == "error", text
            assert '"action"' in reply["message"]
        await ws.send_bytes(b'{"action": "subscribe", "topics": ["plugins"]}')
        assert (await receive(ws))["type"] == "error"

        await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
        assert await receive(ws) == {"type": "subscribed", "topics": ["plugins"]}
        assert not ws.closed
        assert client.app[HUB].connections == 1


async def test_only_signed_in_users_get_a_socket(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    url = client.make_url("/ws")
    async with aiohttp.ClientSession() as stranger:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stranger.ws_connect(url)
        assert refused.value.status == 401
        assert client.app[HUB].connections == 0

        # A script with an API token may listen too.
        user = await add_user(client.app, "script-owner", "a long password")
        _, token = await client.app[TOKENS].create(user, "listener")
        async with stranger.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
            assert await receive(ws) == {"type": "subscribed", "topics": ["plugins"]}

        # The cookie of a session that was signed out no longer opens one.
        cookie = session_cookie(client)
        async with client.ws_connect("/ws"):
            pass
        assert (await client.post("/api/v1/auth/logout")).status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as ended:
            await stranger.ws_connect(url, headers={"Cookie": cookie})
        assert ended.value.status == 401


# --- slow clients ------------------------------------------------------------------------------


class RawWebSocket:
    """A websocket client on a bare socket with a tiny receive buffer, so it can stop reading."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, cookie: str) -> RawWebSocket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Cookie: {cookie}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        assert length < 65536
        header = bytes([0x80 | opcode]) + (
            bytes([0x80 | length])
            if length < 126
            else bytes([0x80 | 126]) + struct.pack("!H", length)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return first & 0x0F, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_a_slow_client_is_dropped_while_others_keep_up(
    tmp_path: Path, make_client: MakeClient
) -> None:
    probe = ProbePlugin()
    settings = load_settings(data_dir=tmp_path / "data", ws_queue_size=8)
    client = await make_client(settings, [("probe", probe)])
    await enable(client, "probe")
    hub = client.app[HUB]
    ctx = client.app[REGISTRY].context("probe")
    subscribe = orjson.dumps({"action": "subscribe", "topics": [probe.topic]})

    slow = await RawWebSocket.connect(
        str(client.host), int(client.port or 0), session_cookie(client)
    )
    await slow.send(0x1, subscribe)
    assert await slow.read_frame() == (0x1, b'{"type":"subscribed","topics":["probe-events"]}')
    # From here on the slow client reads nothing.

    blob = "x" * 65536
    latencies = []
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(subscribe.decode())
        assert (await receive(ws))["type"] == "subscribed"
        assert hub.connections == 2
        events = 0
        while hub.connections == 2:
            events += 1
            assert events < 2000, "the slow client was never dropped"
            started = time.monotonic()
            await ctx.publish(probe.topic, "ping", {"i": events, "blob": blob})
            message = await receive(ws)
            latencies.append(time.monotonic() - started)
            assert message["data"]["i"] == events  # every event, in order
        # The slow client no longer holds anyone up: the normal one still gets every event.
        for _ in range(20):
            events += 1
            started = time.monotonic()
            await ctx.publish(probe.topic, "ping", {"i": events, "blob": blob})
            assert (await receive(ws))["data"]["i"] == events
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 0.5

    # When it reads at last, the slow client finds fewer events than were sent, then a close
    # saying why.
    received = 0
    while True:
        opcode, payload = await asyncio.wait_for(slow.read_frame(), 5)
        if opcode == 0x8:
            break
        assert opcode == 0x1
        received += 1
    assert struct.unpack("!H", payload[:2])[0] == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert payload[2:] == b"too slow"
    assert received < events
    await slow.send(0x8, payload[:2])
    await slow.close()


# --- shutdown ----------------------------------------------------------------------------------


async def test_every_socket_is_closed_at_shutdown(
    sqlite_settings: Settings, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(await create_app(sqlite_settings))
    await add_user(server.app, *ADMIN, role="admin")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        login = {"username": ADMIN[0], "password": ADMIN[1]}
        async with session.post(server.make_url("/api/v1/auth/login"), json=login) as resp:
            assert resp.status == 200
        sockets = [await session.ws_connect(server.make_url("/ws")) for _ in range(3)]
        for ws in sockets:
            await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
            assert (await receive(ws))["type"] == "subscribed"

        started = time.monotonic()
        closing = asyncio.create_task(server.close())
        for ws in sockets:
            msg = await ws.receive(timeout=5)
            assert msg.type is WSMsgType.CLOSE
            assert msg.data == aiohttp.WSCloseCode.GOING_AWAY
        await asyncio.wait_for(closing, 5)
        # Open sockets do not hold the shutdown up.
        assert time.monotonic() - started < 3
        assert all(ws.closed for ws in sockets)


# --- several processes -------------------------------------------------------------------------


@pytest.mark.redis
async def test_an_event_published_on_one_process_reaches_clients_of_another(
    tmp_path: Path, redis_url: str, make_client: MakeClient
) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"

    def settings(name: str) -> Settings:
        return load_settings(
            data_dir=tmp_path / name, database_url=database_url, redis_url=redis_url
        )

    probe_a, probe_b = ProbePlugin(), ProbePlugin()
    a = await make_client(settings("a"), [("probe", probe_a)])
    b = await make_client(settings("b"), [("probe", probe_b)])

    async with b.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["plugins"]})
        assert await receive(ws) == {"type": "subscribed", "topics": ["plugins"]}

        # A toggle made on A is announced to B's clients once B has applied it.
        await enable(a, "probe")
        changed = await receive_matching(ws, "plugins", "name", "probe")
        assert changed["data"]["status"] == "active"
        assert b.app[REGISTRY].is_active("probe")

        await ws.send_json({"action": "subscribe", "topics": [probe_b.topic]})
        assert await receive(ws) == {"type": "subscribed", "topics": [probe_b.topic]}
        token = uuid.uuid4().hex
        await publish_through_route(a, "probe", {"token": token})
        event = await receive_matching(ws, probe_b.topic, "token", token)
        assert event == {"topic": probe_b.topic, "event": "ping", "data": {"token": token}}

    # And the other way round, to a client of A.
    async with a.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": [probe_a.topic]})
        assert (await receive(ws))["topics"] == [probe_a.topic]
        token = uuid.uuid4().hex
        await publish_through_route(b, "probe", {"token": token})
        await receive_matching(ws, probe_a.topic, "token", token)
