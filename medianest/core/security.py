"""Security defaults: who the client is behind a proxy, CSRF tokens, rate limits, headers."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable

from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

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
    """Sliding-window limits per key, shared through Redis when it is configured."""

    def __init__(self, redis_url: str | None, *, sign_in: str, api: str) -> None:
        storage: Storage = (
            RedisStorage(
                "async+" + redis_url, implementation="redispy", key_prefix="medianest:limits"
            )
            if redis_url
            else MemoryStorage()
        )
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self.sign_in: RateLimitItem = parse(sign_in)
        self.api: RateLimitItem = parse(api)

    async def hit(self, item: RateLimitItem, *key: str, what: str) -> None:
        """Count one attempt; past the limit raise a 429 that says when to try again."""
        if await self._limiter.hit(item, *key):
            return
        stats = await self._limiter.get_window_stats(item, *key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            f"Too many {what}; try again in {retry} s.",
            details={"retry_after": retry},
            headers={"Retry-After": str(retry)},
        )

    async def reset(self) -> None:
        await self._storage.reset()


def security_headers(response: web.StreamResponse, *, https: bool) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
