"""The Coordinator, over real HTTP to the fakes: a change announced once however many processes
poll (through the real Redis), backoff on failure and recovery, its state for widgets and health
checks, poll intervals as bounded settings, a live widget that is one declaration, and
``plugin.spawn``'s tasks living and dying with their plugin.

Rounds are driven with ``refresh_now``, not counted by the clock.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import live_plugin
import orjson
import pytest
from aiohttp import WSMsgType
from conftest import Client, MakeClient, wait_for
from medianest_plugins.tautulli import pollers
from medianest_plugins.tautulli.client import client_for

from medianest import Fetched, PluginContext, hookimpl
from medianest.core.coordinator import fingerprint
from medianest.core.http import Unreachable, asking_the_services
from medianest.core.keys import REGISTRY
from medianest.core.settings import Settings, load_settings
from medianest.testing import FakeTautulli

TOPIC = pollers.ACTIVITY_TOPIC


@pytest.fixture
async def tautulli() -> AsyncIterator[FakeTautulli]:
    async with FakeTautulli() as fake:
        yield fake  # type: ignore[misc]


async def configure(client: Client, fake: FakeTautulli, **extra: Any) -> None:
    body = {"url": fake.url, "api_key": fake.apikey, **extra}
    resp = await client.put("/api/v1/plugins/tautulli/settings", json=body)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/v1/plugins/tautulli/enable")
    assert resp.status == 200, await resp.text()


def context(client: Client, plugin: str = "tautulli") -> PluginContext:
    return client.app[REGISTRY].context(plugin)


class Socket:
    """A dashboard's websocket, subscribed to ``topic``: what it receives, in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, client: Client, topic: str) -> Socket:
        ws = await client.ws_connect("/ws")
        await ws.send_json({"action": "subscribe", "topics": [topic]})
        assert orjson.loads((await ws.receive(timeout=5)).data)["type"] == "subscribed"
        return cls(ws)

    async def until(self, event: str) -> list[dict[str, Any]]:
        """The events received before ``event`` (which ends them), from where the last ended."""
        before = []
        while True:
            msg = await self.ws.receive(timeout=5)
            assert msg.type is WSMsgType.TEXT, msg
            message = orjson.loads(msg.data)
            if message.get("event") == event:
                return before
            before.append(message)


async def drained(publisher: PluginContext, *sockets: Socket) -> list[list[dict[str, Any]]]:
    """What each socket received until now. A marker published after everything else reaches
    every socket after it: Redis passes messages on in the order it took them."""
    await publisher.publish(TOPIC, "marker", {})
    return [await socket.until("marker") for socket in sockets]


def updates(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "updated"]


def streams(events: list[dict[str, Any]]) -> list[Any]:
    return [e["data"].get("streams") for e in updates(events)]


# --- once across processes ---------------------------------------------------------------------


@pytest.mark.redis
async def test_two_processes_sharing_redis_announce_each_change_once(
    tmp_path: Path, redis_url: str, make_client: MakeClient, tautulli: FakeTautulli
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", redis_url=redis_url)
    a, b = await make_client(settings), await make_client(settings)
    await configure(a, tautulli)
    await wait_for(lambda: _running(b))
    mine, theirs = await Socket.open(a, TOPIC), await Socket.open(b, TOPIC)
    try:
        # Whatever the first rounds announced is behind us.
        await asyncio.gather(*(pollers.ACTIVITY.refresh_now(context(c)) for c in (a, b)))
        await drained(context(a), mine, theirs)

        # A stream starts, and is in the shared cache: both processes' rounds find it at the
        # same moment; one announces it.
        stream = tautulli.start_stream("mediaowner", "Inception", progress_percent=12)
        await read_into_the_cache(context(a))
        await asyncio.gather(*(pollers.ACTIVITY.refresh_now(context(c)) for c in (a, b)))
        for received in await drained(context(a), mine, theirs):
            assert streams(received) == [3]

        # It ends: back to what was announced two changes ago, announced once again.
        tautulli.stop_stream(stream.session_key)
        await read_into_the_cache(context(b))
        await asyncio.gather(*(pollers.ACTIVITY.refresh_now(context(c)) for c in (a, b)))
        for received in await drained(context(b), mine, theirs):
            assert streams(received) == [2]

        # Nothing changed: nothing is announced, however many rounds.
        for _ in range(3):
            await asyncio.gather(
                *(pollers.ACTIVITY.refresh_now(context(c), again=True) for c in (a, b))
            )
        assert [streams(r) for r in await drained(context(a), mine, theirs)] == [[], []]
    finally:
        await mine.ws.close()
        await theirs.ws.close()


async def read_into_the_cache(plugin: PluginContext) -> None:
    """Read the activity as a round would, into the shared cache, without a round."""
    client = client_for(plugin)
    assert client is not None
    with asking_the_services(again=True):
        await client.activity(ttl=pollers.ACTIVITY.interval_of(plugin))


async def _running(client: Client) -> bool:
    return client.app[REGISTRY].running_pollers("tautulli") == 3


# --- backoff, recovery and state -------------------------------------------------------------


async def test_a_failing_service_is_asked_less_often_and_at_the_interval_again_once_it_answers(
    sqlite_settings: Settings,
    make_client: MakeClient,
    tautulli: FakeTautulli,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(sqlite_settings)
    await configure(client, tautulli, activity_interval=10)
    plugin = context(client)
    socket = await Socket.open(client, TOPIC)
    try:
        await pollers.ACTIVITY.refresh_now(plugin)
        state = pollers.ACTIVITY.state(plugin)
        assert not state.failing and state.last_error is None
        assert state.value.stream_count == 2
        good_at = state.last_success_at
        assert good_at is not None
        assert _seconds(state.next_run_at, good_at) == pytest.approx(10, abs=1)
        await drained(plugin, socket)

        # Tautulli fails: each failed round in a row waits twice as long, up to eight intervals.
        tautulli.faults.status = 500
        asked = tautulli.calls["GET /api/v2"]
        for failures, wait in ((1, 20), (2, 40), (3, 80), (4, 80)):
            await pollers.ACTIVITY.refresh_now(plugin, again=True)
            assert state.failing and state.failures == failures
            assert _seconds(state.next_run_at, state.last_error_at) == pytest.approx(wait, abs=1)
        assert tautulli.calls["GET /api/v2"] == asked + 4  # once a round: no retries of a 500
        # What is shown meanwhile: the last good data, with why it is not fresh.
        assert state.value.stream_count == 2
        assert state.last_success_at == good_at
        assert "Tautulli" in str(state.last_error)
        (health,) = pollers.ACTIVITY.health(plugin)
        assert health.status == "degraded"
        said = r"Failing since \d\d:\d\d \(4 round\(s\)\): Tautulli .+; next try at [\d:]+\."
        assert re.fullmatch(said, health.message), health.message
        # Announced once, and logged once, however many rounds fail.
        ((failed,),) = [updates(r) for r in await drained(plugin, socket)]
        assert failed["data"]["ok"] is False
        warned = [r for r in caplog.records if r.getMessage().startswith(f"{TOPIC}:")]
        assert len(warned) == 1

        # It answers again: the interval is back, and so is the news.
        tautulli.faults.clear()
        await pollers.ACTIVITY.refresh_now(plugin, again=True)
        assert not state.failing and state.failures == 0 and state.failing_since is None
        assert state.last_success_at is not None and state.last_success_at > good_at
        assert _seconds(state.next_run_at, state.last_success_at) == pytest.approx(10, abs=1)
        (health,) = pollers.ACTIVITY.health(plugin)
        assert health.status == "ok"
        ((back,),) = [updates(r) for r in await drained(plugin, socket)]
        assert back["data"]["ok"] is True and back["data"]["streams"] == 2
    finally:
        await socket.ws.close()


def _seconds(later: Any, earlier: Any) -> float:
    assert later is not None and earlier is not None
    return float((later - earlier).total_seconds())


# --- intervals are settings ----------------------------------------------------------------


async def test_a_poll_interval_is_a_setting_within_bounds(
    sqlite_settings: Settings, make_client: MakeClient, tautulli: FakeTautulli
) -> None:
    client = await make_client(sqlite_settings)
    for given, said in ((1, "greater than or equal to 5"), (601, "less than or equal to 600")):
        body = {"url": tautulli.url, "api_key": tautulli.apikey, "activity_interval": given}
        resp = await client.put("/api/v1/plugins/tautulli/settings", json=body)
        assert resp.status == 422
        error = (await resp.json())["error"]
        assert error["details"] == [
            {"field": "activity_interval", "message": f"Input should be {said}"}
        ]
        assert tautulli.calls["GET /api/v2"] == 0  # refused before any connection test

    await configure(client, tautulli, activity_interval=30)
    plugin = context(client)
    assert pollers.ACTIVITY.interval_of(plugin) == 30.0
    await pollers.ACTIVITY.refresh_now(plugin)
    state = pollers.ACTIVITY.state(plugin)
    assert _seconds(state.next_run_at, state.last_success_at) == pytest.approx(30, abs=1)
    # The admin form shows the setting with its bounds; the browser checks them too.
    page = await (await client.get("/admin/plugins")).text()
    field = re.search(r'<input type="number" name="activity_interval"[^>]*>', page)
    assert field is not None, page
    assert 'value="30.0"' in field[0] and 'min="5"' in field[0] and 'max="600"' in field[0]


# --- one declaration ---------------------------------------------------------------------------


async def test_a_live_widget_is_one_declaration_that_renders_and_updates(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    async with live_plugin.Counter() as service:
        service.count = 3
        client = await make_client(sqlite_settings, [("live", live_plugin)])
        record = client.app[REGISTRY].get("live")
        # Topic, poller and template folder follow from the widget's coordinator.
        assert [w.topic for w in record.widgets] == ["live.count"]
        assert [p.name for p in record.pollers] == ["count"]
        assert record.topics == ["live.count"]
        assert record.template_dirs == [Path(live_plugin.__file__).parent / "templates"]

        resp = await client.put("/api/v1/plugins/live/settings", json={"url": service.url})
        assert resp.status == 200, await resp.text()
        assert (await client.post("/api/v1/plugins/live/enable")).status == 200
        assert client.app[REGISTRY].running_pollers("live") == 1
        assert "3 things" in await (await client.get("/widgets/live/count")).text()

        socket = await Socket.open(client, "live.count")
        try:
            service.count = 4
            await live_plugin.COUNT.refresh_now(context(client, "live"), again=True)
            msg = orjson.loads((await socket.ws.receive(timeout=5)).data)
            assert msg == {"topic": "live.count", "event": "updated", "data": {"ok": True}}
            assert "4 things" in await (await client.get("/widgets/live/count")).text()
            assert "4 things" in await (await client.get("/")).text()
        finally:
            await socket.ws.close()
        assert service.calls["GET /count"] == 2  # the first round, and the one asked for


# --- spawn -----------------------------------------------------------------------------------


class SpawningPlugin:
    """Spawning: starts a task that runs until the plugin stops, and one that fails."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cleaned_up = False
        self.stopped_before_deactivate: bool | None = None
        self.context: PluginContext | None = None

    @hookimpl
    def activate(self, plugin: PluginContext) -> None:
        self.context = plugin
        plugin.spawn(self.forever(), name="forever")
        plugin.spawn(self.fail(), name="failing")

    @hookimpl
    def deactivate(self) -> None:
        self.stopped_before_deactivate = self.cleaned_up

    async def forever(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # what it does on the way out is waited for
            self.cleaned_up = True

    async def fail(self) -> None:
        raise OSError("the disk is full")


async def test_spawned_tasks_are_logged_once_when_they_fail_and_stop_with_the_plugin(
    sqlite_settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    spawning = SpawningPlugin()
    client = await make_client(sqlite_settings, [("spawning", spawning)])
    assert (await client.post("/api/v1/plugins/spawning/enable")).status == 200
    await asyncio.wait_for(spawning.started.wait(), 5)

    async def failure_logged() -> bool:
        return any(r.getMessage() == "spawning:failing failed" for r in caplog.records)

    await wait_for(failure_logged)
    (logged,) = [r for r in caplog.records if "spawning:failing" in r.getMessage()]
    assert logged.levelno == logging.ERROR and logged.exc_info is not None
    assert "the disk is full" in str(logged.exc_info[1])

    assert (await client.post("/api/v1/plugins/spawning/disable")).status == 200
    # Cancelled, and waited for, before the plugin's own deactivate ran.
    assert spawning.cleaned_up and spawning.stopped_before_deactivate is True
    assert spawning.context is not None
    work = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="no longer active"):
        spawning.context.spawn(work)


class HalfStartedPlugin:
    """Half started: spawns a task, then fails to activate."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None

    @hookimpl
    def activate(self, plugin: PluginContext) -> None:
        self.task = plugin.spawn(asyncio.Event().wait(), name="waiting")
        raise PermissionError("cannot open the socket")


async def test_what_a_plugin_spawned_before_failing_to_activate_is_stopped(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    half = HalfStartedPlugin()
    client = await make_client(sqlite_settings, [("half", half)])
    resp = await client.post("/api/v1/plugins/half/enable")
    assert (await resp.json())["status"] == "failed"
    assert half.task is not None and half.task.cancelled()


# --- the fingerprint -------------------------------------------------------------------------


def test_the_fingerprint_is_what_a_widget_shows_not_when_it_was_read() -> None:
    now = datetime.now(UTC)
    assert fingerprint(Fetched({"b": 1, "a": [1, 2]}, now)) == fingerprint(
        Fetched({"a": (1, 2), "b": 1}, now - timedelta(minutes=5))
    )
    assert fingerprint({"x": Fetched([1], now)}) == fingerprint({"x": Fetched([1], None)})
    assert fingerprint(Fetched([1], now)) != fingerprint(Fetched([2], now))
    down = Unreachable("Tautulli")
    assert fingerprint(Fetched([1], now, down)) != fingerprint(Fetched([1], now))
