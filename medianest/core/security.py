"""Security defaults: who the client is behind a proxy, CSRF tokens, rate limits, headers."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable
from typing import cast

from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, SlidingWindowCounterSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from .crypto import SecretBox
from .errors import ApiError

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
ANON_COOKIE = "medianest_anon"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class TrustedProxies:
    """Honours ``X-Forwarded-Proto`` and ``X-Forwarded-For`` only from configured proxies."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def _trusted(self, address: str | None) -> bool:
        if not address or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)

    def is_https(self, request: web.Request) -> bool:
        if request.secure:
            return True
        if self._trusted(request.remote):
            return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() == "https"
        return False

    def client_address(self, request: web.Request) -> str:
        remote = request.remote or ""
        if self._trusted(remote):
            forwarded = request.headers.get("X-Forwarded-For", "")
            # The right-most address not of a trusted proxy is the client.
            for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
                if not self._trusted(hop):
                    return hop
        return remote


def csrf_token(box: SecretBox, binding: str) -> str:
    """The CSRF token of a session (or of an anonymous visitor's cookie): a MAC, not stored."""
    return box.sign(f"csrf:{binding}")


def csrf_valid(box: SecretBox, binding: str, token: str | None) -> bool:
    return bool(token) and box.verify(f"csrf:{binding}", token or "")


class RateLimits:
    """Limits per key, shared through Redis when it is configured.

    Sign-in attempts are counted in a moving window (exact: never more than the limit in any
    window of its length). API calls, counted on every call, use a sliding-window counter: two
    counters per user (this window and the last, weighted by how much of it still overlaps),
    so a call costs the same whatever the limit; it approximates the moving window, within the
    calls of one window.
    """

    def __init__(self, redis_url: str | None, *, sign_in: str, api: str) -> None:
        storage: Storage = (
            RedisStorage(
                "async+" + redis_url, implementation="redispy", key_prefix="medianest:limits"
            )
            if redis_url
            else MemoryStorage()
        )
        self._storage = storage
        self._moving = MovingWindowRateLimiter(storage)
        self._counter = SlidingWindowCounterRateLimiter(storage)
        self._local = None if redis_url else _LocalWindows()
        self.sign_in: RateLimitItem = parse(sign_in)
        self.api: RateLimitItem = parse(api)

    async def hit(self, item: RateLimitItem, *key: str, what: str) -> None:
        """Count one attempt; past the limit raise a 429 that says when to try again."""
        if item is self.api:
            limit, length = item.amount, item.get_expiry()
            if self._local is not None:
                if self._local.hit(key, limit, length):
                    return
                window = self._local.window(key, length)
            else:
                if await self._counter.hit(item, *key):
                    return
                storage = cast(SlidingWindowCounterSupport, self._storage)
                window = await storage.get_sliding_window(item.key_for(*key), length)
            retry = _counter_retry(window, limit, length)
        else:
            if await self._moving.hit(item, *key):
                return
            stats = await self._moving.get_window_stats(item, *key)
            retry = stats.reset_time - time.time()
        retry = max(1, math.ceil(retry))
        raise ApiError(
            429,
            f"Too many {what}; try again in {retry} s.",
            details={"retry_after": retry},
            headers={"Retry-After": str(retry)},
        )

    async def reset(self) -> None:
        await self._storage.reset()
        if self._local is not None:
            self._local.clear()


def _counter_retry(window: tuple[int, float, int, float], limit: int, length: int) -> float:
    """Seconds until a sliding-window counter lets one more call through."""
    previous, previous_left, current, current_left = window
    # A call passes while previous * (its weight left) / length + current < limit.
    if current < limit:
        return previous_left - (limit - current) * length / previous if previous else 0.0
    # Not in this window: in the next, when this one's weight has decayed enough.
    return max(0.0, current_left - length) + length * (1 - limit / current)


class _LocalWindows:
    """The sliding-window counter of ``limits`` (the same windows, the same weighting) in this
    process's memory, for installations without Redis. Every API call is counted; the
    library's in-memory backend takes a lock and schedules its expiry on each hit, which costs
    more than the rest of the call's checks together."""

    _SWEEP_AT = 10_000

    def __init__(self) -> None:
        # key → (number of the current window, calls in the window before it, calls in it)
        self._counts: dict[tuple[str, ...], tuple[int, int, int]] = {}

    def _current(self, key: tuple[str, ...], length: int, now: float) -> tuple[int, int, int]:
        index = int(now // length)
        found = self._counts.get(key)
        if found is None or found[0] < index - 1:
            return index, 0, 0
        if found[0] == index - 1:
            return index, found[2], 0
        return found

    def hit(self, key: tuple[str, ...], limit: int, length: int) -> bool:
        now = time.time()
        index, previous, current = self._current(key, length, now)
        weight = 1 - (now / length - index)  # of the previous window: its share still counted
        if math.floor(previous * weight + current) + 1 > limit:
            return False
        if key not in self._counts and len(self._counts) >= self._SWEEP_AT:
            self._counts = {k: c for k, c in self._counts.items() if c[0] >= index - 1}
        self._counts[key] = (index, previous, current + 1)
        return True

    def window(self, key: tuple[str, ...], length: int) -> tuple[int, float, int, float]:
        """As ``limits`` reports it: previous count, seconds its weight lasts, current count,
        seconds until the current count is forgotten."""
        now = time.time()
        index, previous, current = self._current(key, length, now)
        left = (index + 1) * length - now
        return previous, left if previous else 0.0, current, left + length

    def clear(self) -> None:
        self._counts.clear()


def security_headers(response: web.StreamResponse, *, https: bool) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
