"""The upstream client layer against a real service on loopback: circuit breaker, timeouts,
retries, typed errors, cached single-flight calls, last-good answers, secrets and metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest
from redis.asyncio import Redis

from medianest.core.cache import Cache, MemoryCache, RedisCache
from medianest.core.http import (
    BadResponse,
    CircuitOpen,
    ServiceClient,
    ServiceConfig,
    TimedOut,
    Unauthorised,
    Unreachable,
    waiting_for_services,
)
from medianest.core.metrics import REGISTRY
from medianest.testing import FakeServer

API_KEY = "k3y-" + uuid.uuid4().hex
STATUS = "/api/v3/system/status"
SERIES = "/api/v3/series"
COMMAND = "/api/v3/command"
HHMM = r"\d\d:\d\d"


@dataclass
class FakeSonarr(FakeServer):
    """A tiny Sonarr: two JSON routes behind an API key, a command endpoint, and a few
    misbehaviours a test can switch on."""

    api_key: str = API_KEY
    # Answer 503 to this many requests before answering normally again.
    fail_next: int = 0
    # The credentials each request arrived with, as the service saw them.
    seen_keys: list[tuple[str | None, str | None]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_get(STATUS, self.status)
        app.router.add_get(SERIES, self.series)
        app.router.add_get(SERIES + "/{id}", self.one_series)
        app.router.add_post(COMMAND, self.command)
        app.router.add_post("/api/v3/command/drop", self.drop)
        app.router.add_get("/api/v3/garbled", self.garbled)

    def _refused(self, request: web.Request) -> web.Response | None:
        header, query = request.headers.get("X-Api-Key"), request.query.get("apikey")
        self.seen_keys.append((header, query))
        if self.api_key not in (header, query):
            return web.json_response({"error": "Unauthorized"}, status=401)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "busy"}, status=503)
        return None

    async def status(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response(
            {"appName": "Sonarr", "version": "4.0.11.2680"}
        )

    async def series(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response(
            [{"id": 1, "title": "Slow Horses"}, {"id": 2, "title": "Severance"}]
        )

    async def one_series(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response({"message": "NotFound"}, status=404)

    async def command(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response(
            {"id": 7, "name": "RescanSeries", "status": "queued"}, status=201
        )

    async def drop(self, request: web.Request) -> web.Response:
        # The connection goes away after the request arrived and before any answer.
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def garbled(self, request: web.Request) -> web.Response:
        # Says gzip, is not: a broken proxy in front of the service.
        return self._refused(request) or web.Response(
            body=b'{"appName": "Sonarr"}',
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )


@pytest.fixture
async def sonarr() -> AsyncIterator[FakeSonarr]:
    fake = FakeSonarr()
    await fake.start()
    yield fake
    await fake.stop()


MakeClient = Callable[..., ServiceClient]


@pytest.fixture
async def make_client(sonarr: FakeSonarr) -> AsyncIterator[MakeClient]:
    """A client of the fake Sonarr, its own metric labels per test; options as ServiceConfig's."""
    clients: list[ServiceClient] = []
    caches: list[Cache] = []
    instance = f"main-{uuid.uuid4().hex[:8]}"

    def make(cache: Cache | None = None, **options: Any) -> ServiceClient:
        if cache is None:
            cache = MemoryCache()
            caches.append(cache)
        options.setdefault("headers", {"X-Api-Key": API_KEY})
        config = ServiceConfig(
            service="sonarr", instance=instance, base_url=sonarr.url, label="Sonarr", **options
        )
        client = ServiceClient(config, cache)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for cache in caches:
        await cache.close()


async def timed(call: Any) -> tuple[Any, float]:
    """Await ``call``; return what it returned or raised, and how long it took."""
    started = time.perf_counter()
    try:
        result = await call
    except Exception as exc:
        result = exc
    return result, time.perf_counter() - started


def sample(name: str, client: ServiceClient, **labels: str) -> float:
    value = REGISTRY.get_sample_value(
        name, {"service": "sonarr", "instance": client.config.instance, **labels}
    )
    return 0.0 if value is None else value


# --- circuit breaker ------------------------------------------------------------------------


async def test_breaker_opens_after_failures_fails_fast_and_recovers_through_one_trial(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(failure_threshold=3, reset_after=0.3, retries=0, read_timeout=2.0)
    assert (await client.get(STATUS))["appName"] == "Sonarr"

    sonarr.faults.status = 503
    for _ in range(3):
        with pytest.raises(BadResponse):
            await client.get(STATUS)
    assert sonarr.calls[f"GET {STATUS}"] == 4
    assert client.breaker.state == "open"
    assert client.health().state == "breaker open"
    assert sample("medianest_upstream_breaker_state", client) == 2

    # Open: the next calls fail at once, and the service never sees them.
    for _ in range(5):
        error, took = await timed(client.get(STATUS))
        assert isinstance(error, CircuitOpen)
        assert took < 0.05
    assert sonarr.calls[f"GET {STATUS}"] == 4
    # It says why: the failure that opened it.
    said = "Sonarr sent an answer MediaNest could not use (HTTP 503)"
    assert re.fullmatch(f"Sonarr has been failing since {HHMM}: {re.escape(said)}", str(error))
    assert f"since {error.since.astimezone():%H:%M}:" in str(error)
    assert abs((datetime.now(UTC) - error.since).total_seconds()) < 5

    # After reset_after, one trial call goes through; while it is on its way, others still
    # fail fast. The trial fails, so the breaker opens again.
    await asyncio.sleep(0.3)
    sonarr.faults.latency = 0.1
    trial, other = await asyncio.gather(
        timed(client.get(STATUS)), timed(client.get(STATUS)), return_exceptions=False
    )
    assert isinstance(trial[0], BadResponse)
    assert isinstance(other[0], CircuitOpen) and other[1] < 0.05
    assert sonarr.calls[f"GET {STATUS}"] == 5
    assert client.breaker.state == "open"
    error, took = await timed(client.get(STATUS))
    assert isinstance(error, CircuitOpen) and took < 0.05
    assert sonarr.calls[f"GET {STATUS}"] == 5

    # The service is back: the next trial succeeds and closes the breaker.
    sonarr.faults.clear()
    await asyncio.sleep(0.3)
    assert (await client.get(STATUS))["appName"] == "Sonarr"
    assert client.breaker.state == "closed"
    assert client.health().state == "ok"
    assert sample("medianest_upstream_breaker_state", client) == 0
    assert (await client.get(SERIES))[0]["title"] == "Slow Horses"
    assert sonarr.calls[f"GET {STATUS}"] == 6


async def test_breaker_opens_on_a_closed_port_and_closes_when_it_returns(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(failure_threshold=3, reset_after=0.3, retries=0)
    await sonarr.stop()
    for _ in range(3):
        with pytest.raises(Unreachable):
            await client.get(STATUS)
    error, took = await timed(client.get(STATUS))
    assert isinstance(error, CircuitOpen) and took < 0.05

    await sonarr.start()  # the same port again
    await asyncio.sleep(0.3)
    assert (await client.get(STATUS))["version"] == "4.0.11.2680"
    assert client.breaker.state == "closed"
    assert sonarr.calls[f"GET {STATUS}"] == 1


async def test_a_trial_call_given_up_by_its_caller_does_not_jam_the_breaker(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(failure_threshold=1, reset_after=0.2, retries=0)
    sonarr.faults.status = 503
    with pytest.raises(BadResponse):
        await client.get(STATUS)
    await asyncio.sleep(0.2)
    sonarr.faults.clear()
    sonarr.faults.latency = 1.0
    # A page that asked for the trial call is closed before the answer comes.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.get(STATUS)
    sonarr.faults.clear()
    # The service is fine: the next call is the trial, not "unreachable" forever.
    assert (await client.get(STATUS))["appName"] == "Sonarr"
    assert client.breaker.state == "closed"


# --- timeouts and retries ----------------------------------------------------------------


async def test_a_hung_service_costs_one_read_timeout_then_the_breaker_answers(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(failure_threshold=2, reset_after=30.0, read_timeout=0.3, retries=2)
    sonarr.faults.hang = True

    error, took = await timed(client.get(STATUS))
    assert isinstance(error, TimedOut)
    assert str(error) == "Sonarr did not answer in time"
    # One read timeout, not retried: a retry would double the wait.
    assert 0.3 <= took < 0.65
    assert sonarr.calls[f"GET {STATUS}"] == 1

    error, took = await timed(client.get(SERIES))
    assert isinstance(error, TimedOut) and took < 0.65
    assert client.breaker.state == "open"

    for path in (STATUS, SERIES):
        error, took = await timed(client.get(path))
        assert isinstance(error, CircuitOpen) and took < 0.05
    assert sonarr.calls[f"GET {STATUS}"] + sonarr.calls[f"GET {SERIES}"] == 2


async def test_a_get_is_retried_with_backoff_until_it_succeeds(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(retries=2)
    sonarr.fail_next = 2
    value, took = await timed(client.get(SERIES))
    assert [s["title"] for s in value] == ["Slow Horses", "Severance"]
    assert sonarr.calls[f"GET {SERIES}"] == 3
    # Backoff: at least 0.1 s before the second attempt and 0.2 s before the third.
    assert took >= 0.29
    assert client.breaker.failures == 0

    # Three 503s in a row exhaust the two retries.
    sonarr.fail_next = 3
    with pytest.raises(BadResponse) as caught:
        await client.get(SERIES)
    assert caught.value.status == 503
    assert sonarr.calls[f"GET {SERIES}"] == 6


async def test_a_post_is_never_repeated(sonarr: FakeSonarr, make_client: MakeClient) -> None:
    client = make_client(retries=2)
    assert (await client.request("POST", COMMAND, json={"name": "RescanSeries"}))["id"] == 7
    assert sonarr.calls[f"POST {COMMAND}"] == 1

    sonarr.fail_next = 1
    with pytest.raises(BadResponse):
        await client.request("POST", COMMAND, json={"name": "RescanSeries"})
    assert sonarr.calls[f"POST {COMMAND}"] == 2

    with pytest.raises(Unreachable):
        await client.request("POST", "/api/v3/command/drop", json={"name": "RescanSeries"})
    assert sonarr.calls["POST /api/v3/command/drop"] == 1

    # The same failure on a GET is retried, so the single POSTs above were no accident.
    sonarr.fail_next = 1
    await client.get(STATUS)
    assert sonarr.calls[f"GET {STATUS}"] == 2


# --- errors in words ---------------------------------------------------------------------


async def test_a_wrong_api_key_is_refused_credentials_and_does_not_open_the_breaker(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(headers={"X-Api-Key": "not-the-key"}, failure_threshold=2, retries=2)
    for attempt in range(1, 5):
        with pytest.raises(Unauthorised) as caught:
            await client.get(STATUS)
        assert not isinstance(caught.value, Unreachable)
        assert sonarr.calls[f"GET {STATUS}"] == attempt  # neither retried nor cut off
    assert str(caught.value) == (
        "Sonarr refused MediaNest's credentials (check the API key or token)"
    )
    assert caught.value.status == 401
    assert client.breaker.state == "closed"
    health = client.health()
    assert health.state == "degraded"
    assert health.last_error is not None and "refused MediaNest's credentials" in health.last_error


async def test_a_closed_port_is_unreachable(sonarr: FakeSonarr, make_client: MakeClient) -> None:
    client = make_client(retries=0)
    assert client.health().state == "unknown"
    await sonarr.stop()
    error, took = await timed(client.get(STATUS))
    assert isinstance(error, Unreachable)
    assert str(error) == "Sonarr is unreachable"
    assert took < 1.0
    health = client.health()
    assert health.state == "down" and health.last_error == "Sonarr is unreachable"
    assert health.last_error_at is not None


@pytest.mark.parametrize("body", ["html", "truncated"])
async def test_an_unusable_body_is_a_bad_response(
    sonarr: FakeSonarr, make_client: MakeClient, body: str
) -> None:
    client = make_client()
    sonarr.faults.body = body
    with pytest.raises(BadResponse) as caught:
        await client.get(STATUS)
    assert str(caught.value) == "Sonarr sent an answer MediaNest could not use"
    assert sonarr.calls[f"GET {STATUS}"] == 1  # the same body again would not help


async def test_an_undecodable_body_is_a_bad_response(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client()
    with pytest.raises(BadResponse) as caught:
        await client.get("/api/v3/garbled")
    assert str(caught.value) == "Sonarr sent an answer MediaNest could not use"
    fetched = await client.fetch("/api/v3/garbled")
    assert fetched.value is None and isinstance(fetched.error, BadResponse)


async def test_not_found_answers_do_not_make_the_service_unreachable(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(failure_threshold=2, retries=2)
    for attempt in range(1, 4):
        with pytest.raises(BadResponse) as caught:
            await client.get(SERIES + "/999")
        assert caught.value.status == 404
        assert sonarr.calls[f"GET {SERIES}/999"] == attempt
    assert client.breaker.state == "closed"
    assert client.health().state == "degraded"
    assert (await client.get(STATUS))["appName"] == "Sonarr"


# --- caching and single-flight ---------------------------------------------------------


async def test_concurrent_cached_gets_make_one_upstream_call_per_ttl(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client()
    sonarr.faults.latency = 0.05
    first = await asyncio.gather(*(client.get(SERIES, ttl=0.5) for _ in range(50)))
    assert sonarr.calls[f"GET {SERIES}"] == 1
    assert all(v == first[0] for v in first) and first[0][1]["title"] == "Severance"
    assert sample("medianest_upstream_cache_total", client, result="miss") == 1
    assert sample("medianest_upstream_cache_total", client, result="hit") == 49

    second = await asyncio.gather(*(client.get(SERIES, ttl=0.5) for _ in range(50)))
    assert second == first
    assert sonarr.calls[f"GET {SERIES}"] == 1  # within the TTL: none
    assert sample("medianest_upstream_cache_total", client, result="hit") == 99

    # Other parameters are another answer, cached on their own.
    await client.get(SERIES, params={"tvdbId": 1}, ttl=0.5)
    assert sonarr.calls[f"GET {SERIES}"] == 2

    await asyncio.sleep(0.5)
    await asyncio.gather(*(client.get(SERIES, ttl=0.5) for _ in range(50)))
    assert sonarr.calls[f"GET {SERIES}"] == 3


async def test_two_processes_sharing_redis_make_one_upstream_call(
    sonarr: FakeSonarr, make_client: MakeClient, redis_url: str
) -> None:
    connections = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    caches = [RedisCache(connection) for connection in connections]
    try:
        one, two = (make_client(cache=cache) for cache in caches)
        sonarr.faults.latency = 0.1
        answers = await asyncio.gather(
            *(client.get(SERIES, ttl=5) for _ in range(25) for client in (one, two))
        )
        assert sonarr.calls[f"GET {SERIES}"] == 1
        assert all(answer == answers[0] for answer in answers)
    finally:
        for cache in caches:
            await cache.close()
        for connection in connections:
            await connection.aclose()


# --- last good answers -----------------------------------------------------------------


async def test_fetch_shows_the_last_good_answer_with_the_error(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(retries=0, failure_threshold=2, reset_after=30.0)
    good = await client.fetch(SERIES, ttl=0.1)
    assert good.ok and good.describe() == ""
    assert good.value is not None and good.value[0]["title"] == "Slow Horses"
    assert good.fetched_at is not None

    await sonarr.stop()
    await asyncio.sleep(0.1)
    stale = await client.fetch(SERIES, ttl=0.1)
    assert not stale.ok and isinstance(stale.error, Unreachable)
    assert stale.value == good.value
    assert stale.fetched_at == good.fetched_at
    assert stale.describe() == (
        f"Sonarr is unreachable; showing data from {good.fetched_at.astimezone():%H:%M}."
    )

    # Viewers asking again a moment later get that answer at once, without a new attempt
    # (the breaker counted one failure); a poller asks the service.
    again = await client.fetch(SERIES, ttl=0.1)
    assert again.error is stale.error and client.breaker.failures == 1

    async def poll() -> None:
        waiting_for_services()
        await client.fetch(SERIES, ttl=0.1)

    await asyncio.create_task(poll())  # the second failure opens the breaker
    stale = await client.fetch(SERIES, ttl=0.1)
    assert isinstance(stale.error, CircuitOpen) and stale.value == good.value
    assert re.fullmatch(
        f"Sonarr is unreachable since {HHMM}; showing data from {HHMM}\\.", stale.describe()
    )


async def test_while_a_hung_service_is_asked_other_viewers_get_the_last_good_answer_at_once(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(retries=0, read_timeout=4.0)
    good = await client.fetch(SERIES, ttl=0.1)
    assert good.ok and good.value is not None
    await asyncio.sleep(0.15)  # the answer is no longer fresh

    sonarr.faults.hang = True
    first = asyncio.ensure_future(client.fetch(SERIES, ttl=0.1))
    await asyncio.sleep(0.1)  # the first viewer is waiting on the service
    started = time.monotonic()
    others = await asyncio.gather(*(client.fetch(SERIES, ttl=0.1) for _ in range(20)))
    # They wait a moment with it (a refused connection fails within it), not the timeout.
    assert time.monotonic() - started < 2.0
    assert all(o.value == good.value and o.fetched_at == good.fetched_at for o in others)
    assert sonarr.calls[f"GET {SERIES}"] == 2  # the one refresh, not one per viewer

    # The first viewer waits for the service, and sees the last good answer with the error.
    waited = await first
    assert isinstance(waited.error, TimedOut) and waited.value == good.value


async def test_fetch_without_earlier_data_says_so_and_never_raises(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    refused = await make_client(headers={"X-Api-Key": "wrong"}).fetch(STATUS)
    assert refused.value is None and refused.fetched_at is None
    assert refused.describe() == (
        "Sonarr refused MediaNest's credentials (check the API key or token); "
        "no earlier data to show."
    )

    await sonarr.stop()
    nothing = await make_client(retries=0).fetch(STATUS)
    assert nothing.value is None and nothing.fetched_at is None and not nothing.ok
    assert isinstance(nothing.error, Unreachable)
    assert nothing.describe() == "Sonarr is unreachable; no earlier data to show."


# --- credentials --------------------------------------------------------------------------


async def test_credentials_are_sent_but_never_shown(
    sonarr: FakeSonarr,
    make_client: MakeClient,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = Redis.from_url(redis_url)
    cache = RedisCache(connection)
    try:
        client = make_client(
            cache=cache,
            headers={"X-Api-Key": API_KEY},
            params={"apikey": API_KEY},
            retries=1,
            failure_threshold=2,
        )
        await client.get(SERIES, ttl=30)
        await client.fetch(STATUS, params={"includeSeries": "true"}, ttl=30)
        assert sonarr.seen_keys and all(seen == (API_KEY, API_KEY) for seen in sonarr.seen_keys)

        errors: list[Exception] = []
        sonarr.faults.status = 503
        for path in ("/api/v3/queue", "/api/v3/calendar"):
            try:
                await client.get(path)
            except Exception as exc:
                errors.append(exc)
        sonarr.faults.clear()
        await sonarr.stop()
        last = (await client.fetch("/api/v3/queue")).error
        assert last is not None
        errors.append(last)
        assert [type(e) for e in errors] == [BadResponse, BadResponse, CircuitOpen]

        keys = [key.decode() for key in await connection.keys("*")]
        assert any(SERIES in key for key in keys)
        for key in keys:
            assert API_KEY not in key
            assert API_KEY not in (await connection.get(key) or b"").decode()
        for error in errors:
            assert API_KEY not in f"{error} {error!r} {error.__dict__}"
        health = client.health()
        assert API_KEY not in f"{health}"
        # The service's own access log is not ours; every line MediaNest's side wrote is.
        lines = [r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp")]
        assert any(SERIES in line for line in lines), "requests are logged"
        for line in lines:
            assert API_KEY not in line
        assert API_KEY not in generate_latest(REGISTRY).decode()
    finally:
        await cache.close()
        await connection.aclose()


# --- metrics --------------------------------------------------------------------------------


async def test_metrics_count_outcomes_latency_breaker_and_cache(
    sonarr: FakeSonarr, make_client: MakeClient
) -> None:
    client = make_client(failure_threshold=4, retries=0, read_timeout=0.2)

    def requests(outcome: str, status: str = "") -> float:
        return sample("medianest_upstream_requests_total", client, outcome=outcome, status=status)

    await client.get(STATUS, ttl=30)
    await client.get(STATUS, ttl=30)
    with pytest.raises(Unauthorised):
        await client.request("GET", STATUS, headers={"X-Api-Key": "wrong"})
    sonarr.faults.body = "html"
    with pytest.raises(BadResponse):
        await client.get(STATUS)
    sonarr.faults.clear()
    sonarr.faults.hang = True
    with pytest.raises(TimedOut):
        await client.get(SERIES)
    sonarr.faults.clear()
    await sonarr.stop()
    for _ in range(2):
        with pytest.raises(Unreachable):
            await client.get(STATUS)
    with pytest.raises(CircuitOpen):
        await client.get(STATUS)

    assert requests("ok", "200") == 1
    assert requests("unauthorised", "401") == 1
    assert requests("bad_response", "200") == 1
    assert requests("timeout") == 1
    assert requests("unreachable") == 2
    assert requests("circuit_open") == 1
    # Every call that went out was timed; the refused-at-once one did not.
    assert sample("medianest_upstream_request_seconds_count", client) == 6
    assert sample("medianest_upstream_request_seconds_bucket", client, le="0.1") >= 2
    assert sample("medianest_upstream_request_seconds_sum", client) >= 0.2
    assert sample("medianest_upstream_breaker_state", client) == 2
    assert sample("medianest_upstream_cache_total", client, result="miss") == 1
    assert sample("medianest_upstream_cache_total", client, result="hit") == 1

    exposed = generate_latest(REGISTRY).decode()
    for name in (
        "medianest_upstream_requests_total",
        "medianest_upstream_request_seconds_bucket",
        "medianest_upstream_breaker_state",
        "medianest_upstream_cache_total",
    ):
        assert f"{name}{{" in exposed
    assert f'instance="{client.config.instance}",outcome="circuit_open"' in exposed
