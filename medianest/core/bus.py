"""Process-to-process messages: plugin toggles and websocket events.

In the embedded default there is one process and the bus delivers in memory. With Redis
configured every message goes through Redis pub/sub, and each process (the sender included)
receives it from there, so all processes see the same messages in the same order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from redis.asyncio import Redis  # imported only when Redis is configured

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class Bus:
    """In-memory bus; the base of :class:`RedisBus`."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call ``handler(message)`` for every message published on ``channel``."""
        self._handlers[channel].append(handler)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` (a JSON-serialisable dict) to every subscriber of ``channel``."""
        await self._dispatch(channel, message)

    async def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("bus handler for %r failed", channel)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBus(Bus):
    """Delivers through Redis pub/sub to every process connected to the same Redis."""

    def __init__(self, redis: Redis, prefix: str | None = None) -> None:
        super().__init__()
        self._redis = redis
        # Pub/sub channels ignore Redis's database number: put it in the channel names, so
        # installations sharing one Redis on different databases do not hear each other.
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        self._prefix = prefix or f"medianest:{db}:bus:"
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + channel, orjson.dumps(message))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="medianest-bus")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        failing = False
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.psubscribe(self._prefix + "*")
                    self._ready.set()
                    if failing:
                        log.warning("message bus reconnected to Redis")
                        failing = False
                    async for raw in pubsub.listen():
                        if raw["type"] != "pmessage":
                            continue
                        channel = raw["channel"].decode().removeprefix(self._prefix)
                        await self._dispatch(channel, orjson.loads(raw["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.error("message bus lost Redis (%s); retrying", exc)
                    failing = True
                await asyncio.sleep(1)
