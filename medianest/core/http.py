"""The one client layer every plugin uses to talk to its upstream services.

One pooled ``aiohttp.ClientSession`` per configured service instance, with connect and read
timeouts; retries with exponential backoff and jitter (tenacity) for idempotent requests only;
a circuit breaker per instance, so a dead service costs one fast failure instead of a timeout
per page view; response caching through the core cache with single-flight; typed errors that
say in words what went wrong; and Prometheus metrics per instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from yarl import URL

from . import metrics
from .cache import Cache

T = TypeVar("T")
log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
Parse = Literal["json", "text", "bytes", "none"]


# --- errors -----------------------------------------------------------------------------


class ServiceError(Exception):
    """An upstream call failed; ``str(error)`` says how, in words for people."""

    outcome: ClassVar[str] = "error"
    template: ClassVar[str] = "{label} failed"

    def __init__(
        self, label: str, detail: str = "", status: int | None = None, answer: Any = None
    ) -> None:
        self.label = label
        self.detail = detail
        self.status = status
        # The body of an error answer (parsed JSON, else text), so that a plugin can word the
        # service's own explanation ("Invalid apikey"); None when there was none.
        self.answer = answer
        self.at = datetime.now(UTC)
        super().__init__(self.template.format(label=label))


class Unreachable(ServiceError):
    outcome = "unreachable"
    template = "{label} is unreachable"


class TimedOut(ServiceError):
    outcome = "timeout"
    template = "{label} did not answer in time"


class Unauthorised(ServiceError):
    outcome = "unauthorised"
    template = "{label} refused MediaNest's credentials (check the API key or token)"


class BadResponse(ServiceError):
    outcome = "bad_response"
    template = "{label} sent an answer MediaNest could not use"


class RateLimited(BadResponse):
    """The service answered 429: too many requests. ``retry_after`` is how many seconds it
    asked MediaNest to wait (from ``Retry-After``), ``None`` when it did not say."""

    outcome = "rate_limited"
    template = "{label} is limiting MediaNest's requests"

    def __init__(
        self, label: str, retry_after: float | None, answer: Any = None, *, sent: bool = True
    ) -> None:
        super().__init__(label, "HTTP 429" if sent else "waiting out HTTP 429", 429, answer)
        self.retry_after = retry_after
        if retry_after is not None:
            seconds = max(1, math.ceil(retry_after))
            self.args = (f"{label} is limiting MediaNest's requests; try again in {seconds} s",)


class CircuitOpen(ServiceError):
    """The service failed too often: it is not called for a while. ``last`` is the failure
    that opened the breaker, named in the message unless it was the service being unreachable
    ("Sonarr has been failing since 10:42: Sonarr did not answer in time")."""

    outcome = "circuit_open"
    template = "{label} is unreachable"

    def __init__(self, label: str, since: datetime, last: ServiceError | None = None) -> None:
        super().__init__(label)
        self.since = since
        self.last = last
        when = f"{since.astimezone():%H:%M}"
        if last is None or isinstance(last, Unreachable | CircuitOpen):
            self.args = (f"{label} is unreachable since {when}",)
        else:
            said = f" ({last.detail})" if last.detail and last.detail not in str(last) else ""
            self.args = (f"{label} has been failing since {when}: {last}{said}",)


def _answered(exc: ServiceError) -> bool:
    """The service answered (wrong credentials, a missing item): it is up, not failing."""
    if isinstance(exc, Unauthorised):
        return True
    return isinstance(exc, BadResponse) and exc.status is not None and 400 <= exc.status < 500


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, Unreachable):
        return True
    if isinstance(exc, TimedOut):
        # Retrying a read timeout would multiply the wait; a connect timeout is cheap to retry.
        return exc.detail == "connect"
    return isinstance(exc, BadResponse) and exc.status in (502, 503, 504)


# --- circuit breaker ----------------------------------------------------------------------


BreakerState = Literal["closed", "open", "half_open"]
_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


@dataclass
class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures; half-open after ``reset_after``
    seconds, letting one trial call through; its success closes, its failure re-opens."""

    threshold: int = 5
    reset_after: float = 30.0
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    # When the current run of failures began: "unreachable since 10:42".
    failing_since: datetime | None = None
    _trial: bool = False

    def before_call(self, label: str) -> None:
        if self.state == "closed":
            return
        if self.state == "open" and time.monotonic() - self.opened_at >= self.reset_after:
            self.state, self._trial = "half_open", False
        if self.state == "half_open" and not self._trial:
            self._trial = True
            return
        raise CircuitOpen(label, self.failing_since or datetime.now(UTC))

    def abandoned(self) -> None:
        """A call ended without a verdict (its caller went away): if it was the half-open
        trial, the next call is the trial instead."""
        if self.state == "half_open":
            self._trial = False

    def success(self) -> None:
        self.state, self.failures, self.failing_since, self._trial = "closed", 0, None, False

    def failure(self) -> None:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = datetime.now(UTC)
        if self.state == "half_open" or self.failures >= self.threshold:
            self.state, self.opened_at, self._trial = "open", time.monotonic(), False


# --- client -------------------------------------------------------------------------------


# How long a viewer waits for a refresh another caller is already waiting for, before taking
# the last good answer: longer than a refused connection's retries take to fail.
REFRESH_PATIENCE = 1.0
# How long after a read failed viewers are answered with that failure (and the last good
# answer) rather than asking the service again; longer when the read's TTL is.
RETRY_FAILED_AFTER = 5.0
# Set while a poller runs: its calls wait for the service's own answer (or error), since the
# poller announces what changed; viewers take the last good answer while it waits.
_WAIT_FOR_SERVICE: ContextVar[bool] = ContextVar("wait_for_service", default=False)
# Set for a round that must read the service itself (news that its data changed): cached
# answers are read again.
_READ_AGAIN: ContextVar[bool] = ContextVar("read_again", default=False)


def waiting_for_services() -> None:
    """Make :meth:`ServiceClient.fetch` calls of the current task (and the tasks it starts)
    wait for the service even while another caller is already asking it."""
    _WAIT_FOR_SERVICE.set(True)


@contextlib.contextmanager
def asking_the_services(*, again: bool = False) -> Iterator[None]:
    """Within the block, :meth:`ServiceClient.fetch` waits for the service as a poller's does
    (a round run on demand, by a webhook say), and afterwards no longer. ``again``: reads
    cached with a TTL ask the service again rather than take the cached answer."""
    waiting, reading = _WAIT_FOR_SERVICE.set(True), _READ_AGAIN.set(again)
    try:
        yield
    finally:
        _READ_AGAIN.reset(reading)
        _WAIT_FOR_SERVICE.reset(waiting)


@dataclass(frozen=True)
class ServiceConfig:
    """How to reach one service instance. ``headers`` and ``params`` carry its credentials
    (never logged, never part of a cache key)."""

    service: str
    instance: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 5.0
    retries: int = 2
    failure_threshold: int = 5
    reset_after: float = 30.0
    # What people call it in messages: "Sonarr (4K)".
    label: str = ""

    @property
    def display(self) -> str:
        return self.label or self.instance


@dataclass
class Fetched(Generic[T]):
    """A value for a widget: fresh, or the last good one with the error that stopped a refresh."""

    value: T | None
    fetched_at: datetime | None
    error: ServiceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """ "Sonarr is unreachable since 10:42; showing data from 10:40", or ""."""
        if self.error is None:
            return ""
        if self.value is None or self.fetched_at is None:
            return f"{self.error}; no earlier data to show."
        return f"{self.error}; showing data from {self.fetched_at.astimezone():%H:%M}."


@dataclass
class ServiceHealth:
    state: Literal["ok", "degraded", "down", "breaker open", "unknown"]
    breaker: BreakerState
    last_error: str | None
    last_error_at: datetime | None
    latency_ms: float | None
    last_success_at: datetime | None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """TLS settings for a plugin's own client, made once: the system's certificate
    authorities, or those ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name. The service clients and the
    webhook use aiohttp's default context, made the same way when aiohttp is imported (a
    context holds its own copy of the authorities: about 1.5 MB).

    Deprecated (``medianest.tls_context`` warns and goes in 0.2): a plugin's own
    ``aiohttp.ClientSession`` given no ``ssl`` argument uses that default, with nothing to
    gain from a second copy."""
    return ssl.create_default_context()


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer, read whole (for plugins with a client of their own, too)."""

    url: URL
    status: int
    headers: Mapping[str, str]
    content: bytes
    charset: str | None

    @classmethod
    async def read(cls, reply: aiohttp.ClientResponse) -> HttpAnswer:
        return cls(reply.url, reply.status, reply.headers, await reply.read(), reply.charset)

    @property
    def text(self) -> str:
        """The body in its charset (UTF-8 when it names none, or one Python does not know),
        bytes that do not decode replaced."""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


def query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A query string's pairs: ``True`` as ``true``, ``None`` as empty, a list as one pair per
    item (as the services' own clients send them)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is None:
                item = ""
            elif isinstance(item, bool):
                item = "true" if item else "false"
            pairs.append((name, str(item)))
    return pairs


class ServiceClient:
    """Calls one service instance. Plugins get theirs from ``plugin.service_client(...)``."""

    def __init__(
        self,
        config: ServiceConfig,
        cache: Cache,
    ) -> None:
        self.config = config
        self._cache = cache
        self.breaker = CircuitBreaker(config.failure_threshold, config.reset_after)
        self._base = config.base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.connect_timeout,
            sock_connect=config.connect_timeout,
            sock_read=config.read_timeout,
        )
        # Made on the first call, inside the event loop.
        self._http: aiohttp.ClientSession | None = None
        self.closed = False
        self._labels = {"service": config.service, "instance": config.instance}
        self.last_error: ServiceError | None = None
        # monotonic() before which the service asked not to be called (Retry-After).
        self._not_before = 0.0
        self.last_success_at: datetime | None = None
        self.latency_ms: float | None = None
        # The last failure of each cached read (by its cache key), with monotonic() of when.
        self._read_failures: dict[str, tuple[float, ServiceError]] = {}
        self._set_breaker_metric()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            if self.closed:
                raise RuntimeError(f"the client of {self.config.display} is closed")
            self._http = aiohttp.ClientSession(
                headers=dict(self.config.headers),
                timeout=self._timeout,
                # Services answer to their keys; cookies they set are not kept.
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=20),
            )
        return self._http

    async def close(self) -> None:
        self.closed = True
        if self._http is not None:
            await self._http.close()

    # --- calls -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        parse: Parse = "json",
    ) -> Any:
        """One call, with retries for idempotent methods; raises a :class:`ServiceError`."""
        method = method.upper()
        label = self.config.display
        wait = self._not_before - time.monotonic()
        if wait > 0:
            # The service said to wait (429 with Retry-After): do not hammer it meanwhile.
            self._count("rate_limited", None)
            raise RateLimited(label, wait, sent=False)
        try:
            self.breaker.before_call(label)
        except CircuitOpen as exc:
            self._count(exc.outcome, None)
            raise CircuitOpen(label, exc.since, self.last_error) from None
        attempts = self.config.retries + 1 if method in IDEMPOTENT else 1
        started = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.1, max=2.0) + wait_random(0, 0.2),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    result = await self._once(method, path, params, json, headers, parse)
        except ServiceError as exc:
            if _answered(exc):
                # The service answered: it is up, only the credentials or the request are wrong.
                self.breaker.success()
            else:
                self.breaker.failure()
            self._failed(exc)
            raise
        except BaseException:
            self.breaker.abandoned()
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.UPSTREAM_LATENCY.labels(**self._labels).observe(elapsed)
            self._set_breaker_metric()
        self.breaker.success()
        self._set_breaker_metric()
        self.latency_ms = round(elapsed * 1000, 1)
        self.last_success_at = datetime.now(UTC)
        self.last_error = None
        return result

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        parse: Parse,
    ) -> Any:
        label = self.config.display
        wanted = {**self.config.params, **params} if params else self.config.params
        try:
            async with self._session().request(
                method,
                self._base + path,
                params=query(wanted) if wanted else None,
                data=orjson.dumps(json) if json is not None else None,
                headers={
                    **({"Content-Type": "application/json"} if json is not None else {}),
                    **(headers or {}),
                },
                allow_redirects=False,
            ) as reply:
                response = await HttpAnswer.read(reply)
        except aiohttp.ConnectionTimeoutError as exc:
            self._count("timeout", None)
            raise TimedOut(label, "connect") from exc
        except TimeoutError as exc:
            self._count("timeout", None)
            raise TimedOut(label, "read") from exc
        except aiohttp.ClientPayloadError as exc:
            # An answer that could not be read (a body that is not what its encoding says).
            self._count("bad_response", None)
            raise BadResponse(label, type(exc).__name__) from exc
        except aiohttp.ClientResponseError as exc:
            # Its message holds the address, query (and so some API keys) included.
            self._count("bad_response", None)
            raise BadResponse(label, type(exc).__name__) from None
        except (aiohttp.ClientError, OSError) as exc:
            self._count("unreachable", None)
            raise Unreachable(label, type(exc).__name__) from exc
        status = response.status
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s: HTTP %d", label, method, self._shown(path, wanted), status)
        if status in (401, 403):
            self._count("unauthorised", status)
            raise Unauthorised(label, f"HTTP {status}", status, _error_answer(response))
        if status == 429:
            self._count("rate_limited", status)
            retry_after = _retry_after(response.headers.get("Retry-After"))
            # Nothing more is sent to the service until the time it asked for has passed.
            self._not_before = time.monotonic() + (1.0 if retry_after is None else retry_after)
            raise RateLimited(label, retry_after, _error_answer(response))
        if status >= 400:
            self._count("bad_response", status)
            raise BadResponse(label, f"HTTP {status}", status, _error_answer(response))
        try:
            value = _parse(response, parse)
        except ValueError as exc:
            self._count("bad_response", status)
            raise BadResponse(label, f"unreadable body: {exc}", status) from exc
        self._count("ok", status)
        return value

    async def get(
        self, path: str, *, params: Mapping[str, Any] | None = None, ttl: float | None = None
    ) -> Any:
        """GET ``path``; with ``ttl``, from the cache, fetched once however many ask at once."""
        if ttl is None:
            return await self.request("GET", path, params=params)
        entry = await self._cached(path, params, ttl)
        return entry["v"]

    async def fetch(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        ttl: float = 60.0,
        keep_for: float = 86_400.0,
    ) -> Fetched[Any]:
        """Like :meth:`get`, but never raises: on failure it hands back the last good answer
        (kept ``keep_for`` seconds) with the error, for a widget to show both.

        While another caller of this process is already asking the service, waiting with it
        is bounded (:data:`REFRESH_PATIENCE`): then the last good answer comes back, so that a
        service that hangs holds up one viewer until the timeout, not every viewer of the
        dashboard. Pollers (see :func:`waiting_for_services`) always wait: they report what the
        service answers.
        """
        lastgood = self._key(path, params, "lastgood")
        fresh = self._key(path, params, "fresh")
        viewer = not _WAIT_FOR_SERVICE.get()
        failed = self._read_failures.get(fresh)
        if (
            keep_for
            and viewer
            and failed is not None
            and time.monotonic() - failed[0] < max(ttl, RETRY_FAILED_AFTER)
            and self.breaker.state != "open"
        ):
            # The service failed this read a moment ago: a viewer gets the last good answer
            # with that error at once, without waiting on the service again; the pollers (or
            # the first viewer after that moment) ask it again. (With the breaker open, asking
            # fails at once anyway, and says so.)
            last = await self._cache.get(lastgood)
            if last is not None:
                return Fetched(last["v"], datetime.fromisoformat(last["at"]), failed[1])
        answer: Awaitable[dict[str, Any]] = self._cached(path, params, ttl, keep_for=keep_for)
        if keep_for and viewer and self._cache.computing(fresh):
            waiting = asyncio.ensure_future(answer)
            done, _ = await asyncio.wait({waiting}, timeout=REFRESH_PATIENCE)
            last = None if done else await self._cache.get(lastgood)
            if last is not None:
                waiting.cancel()  # this caller's wait only: the refresh itself goes on
                return Fetched(last["v"], datetime.fromisoformat(last["at"]), self.last_error)
            answer = waiting
        try:
            entry = await answer
        except ServiceError as exc:
            self._read_failures[fresh] = (time.monotonic(), exc)
            last = await self._cache.get(lastgood)
            if last is None:
                return Fetched(None, None, exc)
            return Fetched(last["v"], datetime.fromisoformat(last["at"]), exc)
        self._read_failures.pop(fresh, None)
        return Fetched(entry["v"], datetime.fromisoformat(entry["at"]))

    async def _cached(
        self, path: str, params: Mapping[str, Any] | None, ttl: float, keep_for: float = 0
    ) -> dict[str, Any]:
        key = self._key(path, params, "fresh")
        hit = True
        if _READ_AGAIN.get():
            await self._cache.delete(key)

        async def compute() -> dict[str, Any]:
            nonlocal hit
            hit = False
            value = await self.request("GET", path, params=params)
            entry = {"v": value, "at": datetime.now(UTC).isoformat()}
            if keep_for:
                await self._cache.set(self._key(path, params, "lastgood"), entry, keep_for)
            return entry

        entry = await self._cache.get_or_compute(key, ttl, compute)
        metrics.UPSTREAM_CACHE.labels(**self._labels, result="hit" if hit else "miss").inc()
        return entry

    async def forget(self, path: str, *, params: Mapping[str, Any] | None = None) -> None:
        """Drop the cached answer of ``path`` (the last good one stays), so that the next
        :meth:`get` or :meth:`fetch` with a ``ttl`` asks the service: for news that the data
        changed (a webhook, say) before its TTL is up."""
        await self._cache.delete(self._key(path, params, "fresh"))

    def _shown(self, path: str, params: Mapping[str, Any]) -> str:
        """``path`` and its query for the log, the credentials' values hidden."""
        if not params:
            return path
        secret = self.config.params
        shown = [(k, "hidden" if k in secret else v) for k, v in query(params)]
        return path + "?" + "&".join(f"{k}={v}" for k, v in shown)

    def _key(self, path: str, params: Mapping[str, Any] | None, kind: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        # The address is part of the key (hashed: it may carry credentials), so that an
        # instance pointed elsewhere starts afresh.
        address = hashlib.sha256(self.config.base_url.encode()).hexdigest()[:12]
        where = f"{self.config.service}:{self.config.instance}:{address}"
        return f"upstream:{kind}:{where}:{path}?{query}"

    # --- state ---------------------------------------------------------------------------

    def health(self) -> ServiceHealth:
        if self.breaker.state == "open":
            state: Any = "breaker open"
        elif self.last_error is not None:
            state = "degraded" if _answered(self.last_error) else "down"
        elif self.last_success_at is not None:
            state = "ok"
        else:
            state = "unknown"
        return ServiceHealth(
            state=state,
            breaker=self.breaker.state,
            last_error=str(self.last_error) if self.last_error else None,
            last_error_at=self.last_error.at if self.last_error else None,
            latency_ms=self.latency_ms,
            last_success_at=self.last_success_at,
        )

    def _failed(self, exc: ServiceError) -> None:
        self.last_error = exc

    def _count(self, outcome: str, status: int | None) -> None:
        metrics.UPSTREAM_REQUESTS.labels(
            **self._labels, outcome=outcome, status=str(status or "")
        ).inc()

    def _set_breaker_metric(self) -> None:
        metrics.UPSTREAM_BREAKER.labels(**self._labels).set(_STATE_VALUE[self.breaker.state])


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_answer(response: HttpAnswer) -> Any:
    """What the service said with an error status: its JSON, else its text (when short)."""
    if len(response.content) > 65_536:
        return None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            return orjson.loads(response.content)
        except ValueError:
            pass
    return response.text


def _parse(response: HttpAnswer, parse: Parse) -> Any:
    if parse == "none":
        return None
    if parse == "bytes":
        return response.content
    if parse == "text":
        return response.text
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type:
        raise ValueError(f"expected JSON, got {content_type or 'no content type'}")
    return orjson.loads(response.content)


async def close_all(clients: list[ServiceClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
