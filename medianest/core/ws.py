"""Websockets at ``/ws``: clients subscribe to topics and receive JSON events.

Client → server: ``{"action": "subscribe" | "unsubscribe", "topics": ["plugins", ...]}``.
Server → client: ``{"topic": ..., "event": ..., "data": {...}}``, plus ``{"type": "subscribed",
"topics": [...]}`` and ``{"type": "error", "message": ...}`` replies.

Events go through the bus, so with Redis configured an event published on one process reaches
subscribers on every process. An event is serialised once and written to each subscriber's
socket in one pass that never waits for a socket: what a client has not read yet stays in its
socket's write buffer, and a client with more than ``queue_size`` events still waiting there is
dropped, so nobody else waits for it. Each client gets its events in the order they were
published.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from .bus import Bus

log = logging.getLogger(__name__)

BUS_CHANNEL = "ws"
# Sessions revoked and users changed: their open sockets are closed on every process, so a
# revocation cuts off live events too, not only the next request.
ACCESS_CHANNEL = "access"
MAX_TOPICS_PER_CLIENT = 100
_USAGE = 'send text: {"action": "subscribe" or "unsubscribe", "topics": [...]}'
# Seconds between pings to each client (a client that stops answering is closed).
HEARTBEAT = 30.0
# aiohttp's writer waits for the socket to drain once this much was written since it last did;
# the hub never waits (a slow client's data stays buffered, and the hub drops that client).
_NEVER_WAIT = 2**62


class _Client:
    __slots__ = (
        "_buffered_total",
        "_waiting",
        "permissions",
        "session_id",
        "topics",
        "transport",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        user_id: str | None = None,
        session_id: str | None = None,
        permissions: frozenset[str] = frozenset(),
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.user_id = user_id
        self.session_id = session_id
        # What the user may see; their sockets are closed when it changes (ACCESS_CHANNEL).
        self.permissions = permissions
        self.topics: set[str] = set()
        # Bytes of this client's messages that went into the write buffer (the socket did not
        # take them at once), and for each message still waiting there, that total once it
        # was in: the message has left when the buffer has drained past it.
        self._buffered_total = 0
        self._waiting: deque[int] | None = None

    def waiting(self) -> int:
        """How many of the messages sent to this client are still in its write buffer."""
        if not self._waiting:
            return 0
        buffered = self.transport.get_write_buffer_size()
        if not buffered:
            self._waiting, self._buffered_total = None, 0
            return 0
        left = self._buffered_total - buffered
        while self._waiting and self._waiting[0] <= left:
            self._waiting.popleft()
        return len(self._waiting)

    async def send(self, payload: bytes) -> None:
        """Write one text message; returns once it is written or buffered (never waits for
        the client to read)."""
        before = self.transport.get_write_buffer_size()
        await self.ws.send_frame(payload, WSMsgType.TEXT)
        after = self.transport.get_write_buffer_size()
        if after:
            self._buffered_total += after - before
            if self._waiting is None:
                self._waiting = deque()
            self._waiting.append(self._buffered_total)


class WebSocketHub:
    """Tracks connected clients and their topics; delivers events published on the bus."""

    def __init__(self, bus: Bus, queue_size: int, topic_allowed: Callable[[str], bool]) -> None:
        self._bus = bus
        self._queue_size = queue_size
        self._topic_allowed = topic_allowed
        self._clients: set[_Client] = set()
        self._by_topic: dict[str, set[_Client]] = defaultdict(set)
        self._closing = False
        self._tasks: set[asyncio.Future[Any]] = set()
        bus.subscribe(BUS_CHANNEL, self._deliver)
        bus.subscribe(ACCESS_CHANNEL, self._on_access_change)

    @property
    def connections(self) -> int:
        return len(self._clients)

    async def publish(
        self,
        topic: str,
        event: str,
        data: Mapping[str, Any],
        *,
        user_id: str | None = None,
        permission: str | None = None,
    ) -> None:
        """Send an event to the subscribers of ``topic`` on every process: all of them, or only
        the sockets of ``user_id``, or only those of users holding ``permission``."""
        message: dict[str, Any] = {"topic": topic, "event": event, "data": dict(data)}
        if user_id is not None:
            message["user_id"] = user_id
        if permission is not None:
            message["permission"] = permission
        await self._bus.publish(BUS_CHANNEL, message)

    async def _on_access_change(self, message: dict[str, Any]) -> None:
        sessions = set(message.get("session_ids") or ())
        user_id = message.get("user_id")
        gone = [
            c
            for c in list(self._clients)
            if (c.session_id is not None and c.session_id in sessions)
            or (user_id is not None and c.user_id == user_id)
        ]
        for client in gone:
            self._forget(client)
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out") for c in gone),
            return_exceptions=True,
        )

    def deliver_local(self, topic: str, event: str, data: Mapping[str, Any]) -> None:
        """Send an event to the subscribers of ``topic`` on this process only."""
        self._background(self._deliver({"topic": topic, "event": event, "data": dict(data)}))

    async def _deliver(self, message: dict[str, Any]) -> None:
        topic = message.get("topic")
        if not isinstance(topic, str) or not self._topic_allowed(topic):
            return
        subscribers = self._by_topic.get(topic)
        if not subscribers:
            return
        to_user, to_permission = message.get("user_id"), message.get("permission")
        public = {k: message[k] for k in ("topic", "event", "data") if k in message}
        payload = orjson.dumps(public)
        # No write below waits (see handle), so one event is written to everyone before the
        # next: each client's events stay in order.
        for client in list(subscribers):
            if to_user is not None and client.user_id != to_user:
                continue
            if to_permission is not None and to_permission not in client.permissions:
                continue
            await self._send(client, payload)

    async def _send(self, client: _Client, payload: bytes) -> None:
        if client.waiting() >= self._queue_size:
            log.warning("dropping a websocket client that fell %d events behind", self._queue_size)
            self._drop(client)
            return
        try:
            await client.send(payload)
        except ConnectionError:  # the socket is closing; its handler forgets the client
            self._forget(client)

    def _drop(self, client: _Client) -> None:
        self._forget(client)
        self._background(client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow"))

    def _background(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, client: _Client) -> None:
        for topic in client.topics:
            subscribers = self._by_topic.get(topic)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self._by_topic[topic]
        client.topics.clear()
        self._clients.discard(client)

    async def handle(
        self,
        request: web.Request,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        permissions: frozenset[str] = frozenset(),
    ) -> web.WebSocketResponse:
        """The ``/ws`` endpoint, for a client signed in as ``user_id`` (by ``session_id``)
        holding ``permissions``."""
        # Events are small JSON: compressing them would cost every socket its own compressor
        # (memory) and every event a compression per client (time).
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT,
            max_msg_size=64 * 1024,
            compress=False,
            writer_limit=_NEVER_WAIT,
        )
        await ws.prepare(request)
        if self._closing:
            await ws.close(code=WSCloseCode.GOING_AWAY)
            return ws
        transport = request.transport
        if transport is None:  # the client went away during the handshake
            return ws
        client = _Client(ws, transport, user_id, session_id, permissions)
        self._clients.add(client)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_message(client, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await self._reply(client, {"type": "error", "message": _USAGE})
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._forget(client)
        return ws

    async def _on_message(self, client: _Client, text: str) -> None:
        try:
            message = orjson.loads(text)
            action = message["action"]
            topics = message["topics"]
            if action not in ("subscribe", "unsubscribe") or not isinstance(topics, list):
                raise ValueError
            topics = [str(t) for t in topics]
        except (ValueError, KeyError, TypeError):
            await self._reply(client, {"type": "error", "message": _USAGE})
            return
        if action == "unsubscribe":
            for topic in topics:
                client.topics.discard(topic)
                self._by_topic.get(topic, set()).discard(client)
            await self._reply(client, {"type": "unsubscribed", "topics": topics})
            return
        refused = [t for t in topics if not self._topic_allowed(t)]
        accepted = [t for t in topics if t not in refused]
        if len(client.topics | set(accepted)) > MAX_TOPICS_PER_CLIENT:
            await self._reply(
                client,
                {
                    "type": "error",
                    "message": f"at most {MAX_TOPICS_PER_CLIENT} topics per client",
                },
            )
            return
        for topic in accepted:
            client.topics.add(topic)
            self._by_topic[topic].add(client)
        await self._reply(client, {"type": "subscribed", "topics": accepted})
        if refused:
            await self._reply(
                client,
                {
                    "type": "error",
                    "message": f"unknown or inactive topics: {', '.join(refused)}",
                    "topics": refused,
                },
            )

    async def _reply(self, client: _Client, message: dict[str, Any]) -> None:
        if client in self._clients:
            await self._send(client, orjson.dumps(message))

    async def close(self) -> None:
        """Close every socket (at shutdown)."""
        self._closing = True
        clients = list(self._clients)
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for c in clients),
            return_exceptions=True,
        )
