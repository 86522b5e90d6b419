"""The cache: the same behaviour in process memory and in Redis, and single-flight computation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import wait_for
from redis.asyncio import Redis

from medianest.core.cache import Cache, MemoryCache, RedisCache


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the in-memory cache, else the test Redis."""
    return None if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
async def cache(backend_url: str | None) -> AsyncIterator[Cache]:
    if backend_url is None:
        memory = MemoryCache()
        yield memory
        await memory.close()
        return
    redis = Redis.from_url(backend_url)
    shared = RedisCache(redis)
    try:
        yield shared
    finally:
        await shared.close()
        await redis.aclose()


class Counter:
    """A computation that counts its calls, like an upstream API would see them."""

    def __init__(self, value: Any = None, delay: float = 0.05, error: Exception | None = None):
        self.calls = 0
        self.value = value
        self.delay = delay
        self.error = error

    async def __call__(self) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.value


async def test_get_set_delete(cache: Cache) -> None:
    assert await cache.get("missing") is None
    await cache.set("k", {"a": 1}, ttl=60)
    assert await cache.get("k") == {"a": 1}
    await cache.set("k", [2], ttl=60)
    assert await cache.get("k") == [2]
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.delete("k")  # deleting what is not there is fine


async def test_values_expire_after_their_ttl(cache: Cache) -> None:
    await cache.set("short", "soon gone", ttl=0.2)
    await cache.set("long", "stays", ttl=60)
    assert await cache.get("short") == "soon gone"

    async def expired() -> bool:
        return await cache.get("short") is None

    await wait_for(expired, seconds=3)
    assert await cache.get("long") == "stays"


async def test_json_round_trip(cache: Cache) -> None:
    value = {
        "title": "Amélie — 天使",
        "year": 2001,
        "rating": 8.3,
        "watched": False,
        "poster": None,
        "genres": ["comedy", "romance"],
        "seasons": [{"n": 1, "episodes": [1, 2, 3]}],
    }
    await cache.set("movie", value, ttl=60)
    assert await cache.get("movie") == value
    # Tuples come back as lists on both backends: the value is JSON, not a Python object.
    await cache.set("pair", (1, 2), ttl=60)
    assert await cache.get("pair") == [1, 2]
    for scalar in (0, "", [], {}, False):
        await cache.set("falsy", scalar, ttl=60)
        assert await cache.get("falsy") == scalar


async def test_values_that_are_not_json_are_refused(cache: Cache) -> None:
    with pytest.raises(TypeError):
        await cache.set("obj", object(), ttl=60)
    assert await cache.get("obj") is None


async def test_get_or_compute_stores_the_value(cache: Cache) -> None:
    compute = Counter(value={"now_playing": 3})
    assert await cache.get_or_compute("plex:sessions", 60, compute) == {"now_playing": 3}
    assert await cache.get("plex:sessions") == {"now_playing": 3}
    assert await cache.get_or_compute("plex:sessions", 60, compute) == {"now_playing": 3}
    assert compute.calls == 1


async def test_concurrent_callers_share_one_computation(cache: Cache) -> None:
    compute = Counter(value={"queue": [1, 2]})
    results = await asyncio.gather(
        *(cache.get_or_compute("arr:queue", 60, compute) for _ in range(50))
    )
    assert compute.calls == 1
    assert results == [{"queue": [1, 2]}] * 50


async def test_a_failure_reaches_every_waiter_and_is_not_cached(cache: Cache) -> None:
    compute = Counter(error=RuntimeError("Sonarr is down"))
    results = await asyncio.gather(
        *(cache.get_or_compute("arr:calendar", 60, compute) for _ in range(50)),
        return_exceptions=True,
    )
    assert compute.calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "Sonarr is down" for r in results)
    assert await cache.get("arr:calendar") is None
    # The next caller tries again rather than getting a remembered failure.
    recovered = Counter(value="back")
    assert await cache.get_or_compute("arr:calendar", 60, recovered) == "back"
    assert recovered.calls == 1


async def test_a_caller_going_away_does_not_fail_the_others(cache: Cache) -> None:
    """A viewer who closes the tab must not cancel the widget for everyone else."""
    compute = Counter(value="stats", delay=0.2)
    first = asyncio.create_task(cache.get_or_compute("tautulli:stats", 60, compute))
    await asyncio.sleep(0.05)
    others = [
        asyncio.create_task(cache.get_or_compute("tautulli:stats", 60, compute)) for _ in range(5)
    ]
    await asyncio.sleep(0.05)
    first.cancel()
    assert await asyncio.gather(*others) == ["stats"] * 5
    assert compute.calls == 1
    assert first.cancelled()
    assert await cache.get("tautulli:stats") == "stats"


async def test_different_keys_compute_separately(cache: Cache) -> None:
    a, b = Counter(value="a"), Counter(value="b")
    assert await asyncio.gather(
        cache.get_or_compute("a", 60, a), cache.get_or_compute("b", 60, b)
    ) == ["a", "b"]
    assert (a.calls, b.calls) == (1, 1)


def test_memory_cache_stays_within_its_size_bound() -> None:
    async def scenario() -> None:
        cache = MemoryCache(max_entries=3)
        await cache.set("expired", 0, ttl=0.001)
        await cache.set("one", 1, ttl=60)
        await cache.set("two", 2, ttl=60)
        await asyncio.sleep(0.01)
        await cache.set("three", 3, ttl=60)  # the expired entry makes room
        assert [await cache.get(k) for k in ("one", "two", "three")] == [1, 2, 3]
        await cache.set("four", 4, ttl=60)  # then the oldest goes
        assert await cache.get("one") is None
        assert [await cache.get(k) for k in ("two", "three", "four")] == [2, 3, 4]

    asyncio.run(scenario())


# --- several processes sharing one Redis -------------------------------------------------


@pytest.fixture
async def two_processes(redis_url: str) -> AsyncIterator[tuple[RedisCache, RedisCache]]:
    """Two caches on two separate Redis clients, as two MediaNest processes would have."""
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        yield RedisCache(first), RedisCache(second)
    finally:
        await first.aclose()
        await second.aclose()


async def test_processes_share_values(two_processes: tuple[RedisCache, RedisCache]) -> None:
    one, two = two_processes
    await one.set("k", {"shared": True}, ttl=60)
    assert await two.get("k") == {"shared": True}
    await two.delete("k")
    assert await one.get("k") is None


async def test_processes_share_one_computation(
    two_processes: tuple[RedisCache, RedisCache],
) -> None:
    one, two = two_processes
    compute = Counter(value={"library": 1234}, delay=0.1)
    results = await asyncio.gather(
        *(c.get_or_compute("plex:library", 60, compute) for c in (one, two) for _ in range(10))
    )
    assert compute.calls == 1
    assert results == [{"library": 1234}] * 20


async def test_processes_share_one_computation_even_when_it_is_instant(
    two_processes: tuple[RedisCache, RedisCache],
) -> None:
    one, two = two_processes
    for round_ in range(20):
        compute = Counter(value=round_, delay=0)
        key = f"instant:{round_}"
        results = await asyncio.gather(
            one.get_or_compute(key, 60, compute), two.get_or_compute(key, 60, compute)
        )
        assert results == [round_, round_]
        assert compute.calls == 1, f"round {round_}: computed {compute.calls} times"


async def test_lock_of_a_crashed_process_does_not_block_for_long(
    two_processes: tuple[RedisCache, RedisCache], redis_url: str
) -> None:
    one, _ = two_processes
    # A process took the lock and died; its lock expires on its own.
    crashed = Redis.from_url(redis_url)
    try:
        await crashed.set("medianest:cache:lock:plex:status", "dead", px=300)
    finally:
        await crashed.aclose()
    compute = Counter(value="up", delay=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await one.get_or_compute("plex:status", 60, compute) == "up"
    assert compute.calls == 1
    # It waited for the lock to expire (the holder might still have been computing), no longer.
    assert 0.2 <= loop.time() - started < 5
