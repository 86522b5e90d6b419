"""One cache interface with two backends: Redis when configured, process memory otherwise.

Values are JSON (encoded with orjson by both backends, so code that works on one works on the
other). :meth:`Cache.get_or_compute` coalesces concurrent callers of one key into a single
computation: within a process through a shared future, across processes through a short
Redis lock, so N viewers of a widget cause one upstream call, not N.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson

if TYPE_CHECKING:
    from redis.asyncio import Redis  # imported only when Redis is configured

T = TypeVar("T")

# Longest a computation may hold the cross-process lock before others compute themselves.
LOCK_SECONDS = 30.0
_POLL_SECONDS = 0.05


class Cache(ABC):
    """Key/value cache with TTLs and single-flight computation."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Task[Any]] = {}

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """Return the value stored under ``key``, or ``None`` when absent or expired."""

    @abstractmethod
    async def get_encoded(self, key: str) -> bytes | None:
        """The JSON of the value stored under ``key`` as stored, or ``None``: for a caller that
        keeps what it made of a value, and reads it again only when these bytes change."""

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: float) -> None:
        """Store a JSON-serialisable ``value`` for ``ttl`` seconds."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key``."""

    @abstractmethod
    async def swap(self, key: str, value: Any, ttl: float) -> Any | None:
        """Store ``value`` for ``ttl`` seconds and return what was stored before (``None``),
        in one step: of several processes swapping the same value in, one gets another back."""

    async def close(self) -> None:
        """Release the backend's resources."""
        for task in self._inflight.values():
            task.cancel()
        self._inflight.clear()

    # Cross-process coordination; the memory backend is alone, so it always wins.
    async def _try_lock(self, key: str, token: str) -> bool:
        return True

    async def _unlock(self, key: str, token: str) -> None:
        return None

    async def _locked(self, key: str) -> bool:
        return False

    def computing(self, key: str) -> bool:
        """Whether this process is computing ``key`` right now (see :meth:`get_or_compute`)."""
        return key in self._inflight

    async def get_or_compute(self, key: str, ttl: float, compute: Callable[[], Awaitable[T]]) -> T:
        """Return the cached value of ``key``, or compute, store and return it exactly once.

        Concurrent callers of the same key wait for the one computation. If it raises,
        every waiter gets the exception and nothing is stored.
        """
        cached = await self.get(key)
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None:
            # The computation runs in a task of its own, so a caller that goes away (a closed
            # browser tab) does not cancel it for the others waiting on the same key.
            task = asyncio.ensure_future(self._run(key, ttl, compute))
            task.add_done_callback(_retrieve_exception)
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _run(self, key: str, ttl: float, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._compute_once(key, ttl, compute)
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]

    async def _compute_once(self, key: str, ttl: float, compute: Callable[[], Awaitable[T]]) -> T:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_SECONDS
        while not await self._try_lock(key, token):
            # Another process is computing: wait for its value or for its lock to go.
            await asyncio.sleep(_POLL_SECONDS)
            cached = await self.get(key)
            if cached is not None:
                return cached
            if time.monotonic() > deadline or not await self._locked(key):
                break
        try:
            # Another process may have stored the value between our first look and the lock.
            cached = await self.get(key)
            if cached is not None:
                return cached
            value = await compute()
            if value is not None:
                await self.set(key, value, ttl)
            return value
        finally:
            await self._unlock(key, token)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # Every caller may have gone away; the failure has been reported to those still there.
    if not task.cancelled():
        task.exception()


class MemoryCache(Cache):
    """The embedded default: a dict in this process, expired lazily and on a size bound."""

    def __init__(self, max_entries: int = 10_000) -> None:
        super().__init__()
        self._data: dict[str, tuple[float, bytes]] = {}
        self._max_entries = max_entries

    async def get(self, key: str) -> Any | None:
        raw = await self.get_encoded(key)
        return None if raw is None else orjson.loads(raw)

    async def get_encoded(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, raw = entry
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return raw

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if len(self._data) >= self._max_entries and key not in self._data:
            self._evict()
        self._data[key] = (time.monotonic() + ttl, orjson.dumps(value))

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def swap(self, key: str, value: Any, ttl: float) -> Any | None:
        # Nothing awaits between the read and the write: no other task comes in between.
        previous = await self.get(key)
        await self.set(key, value, ttl)
        return previous

    def _evict(self) -> None:
        now = time.monotonic()
        for key in [k for k, (exp, _) in self._data.items() if exp < now]:
            del self._data[key]
        while len(self._data) >= self._max_entries:
            del self._data[next(iter(self._data))]  # oldest inserted first


class RedisCache(Cache):
    """Shared by every MediaNest process that points at the same Redis."""

    def __init__(self, redis: Redis, prefix: str = "medianest:cache:") -> None:
        super().__init__()
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> Any | None:
        raw = await self._redis.get(self._prefix + key)
        return None if raw is None else orjson.loads(raw)

    async def get_encoded(self, key: str) -> bytes | None:
        raw = await self._redis.get(self._prefix + key)
        return None if raw is None else bytes(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self._redis.set(self._prefix + key, orjson.dumps(value), px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def swap(self, key: str, value: Any, ttl: float) -> Any | None:
        raw = await self._redis.set(
            self._prefix + key, orjson.dumps(value), px=max(1, int(ttl * 1000)), get=True
        )
        return None if raw is None else orjson.loads(raw)

    async def _try_lock(self, key: str, token: str) -> bool:
        lock = f"{self._prefix}lock:{key}"
        return bool(await self._redis.set(lock, token, nx=True, px=int(LOCK_SECONDS * 1000)))

    async def _unlock(self, key: str, token: str) -> None:
        # Delete the lock only if it is still ours (it may have expired and been retaken).
        # redis-py types its commands for both its sync and async clients.
        await cast(
            Awaitable[Any], self._redis.eval(_UNLOCK_SCRIPT, 1, f"{self._prefix}lock:{key}", token)
        )

    async def _locked(self, key: str) -> bool:
        return bool(await self._redis.exists(f"{self._prefix}lock:{key}"))


_UNLOCK_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
