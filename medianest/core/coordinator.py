"""Coordinators: poll a service on an interval, keep what it said, announce what changed, once.

A live widget is fed by a coordinator, as Home Assistant's entities are by its
``DataUpdateCoordinator``: every interval (a plugin setting) it asks the service through the
plugin's service client, keeps the answer, and when what the widget shows has changed it
announces it on the widget's topic, so that open dashboards reload the tile. Reads go through
the service client's cache with the interval as TTL, so however many processes poll, the
service is asked about once per interval.

Once across processes: the fingerprint of what was last announced is kept in the shared cache
(Redis when configured, this process's memory otherwise), and each round swaps its own in, in
one step. Only the round that swapped out something else announces, so several processes seeing
one change announce it once. A widget's loader reads what its process's coordinator last read,
after catching up when another process announced something newer.

A coordinator may poll several members of a plugin (each Sonarr and Radarr instance): each has
its own state, fingerprint and backoff, and its identity (``about``) is told in its events.

A failing round is logged once and its recovery as such; the next one waits longer, twice as long
after each failure in a row (at most :data:`MAX_BACKOFF_FACTOR` intervals and ``max_backoff``
seconds), and the first success brings back the interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import orjson
from pydantic_core import to_jsonable_python

from .extensions import HealthResult, PluginContext, Poller, Widget, _no_loader, call_with, resolve
from .http import Fetched, asking_the_services

T = TypeVar("T")
log = logging.getLogger(__name__)

# A failing member waits at most this many intervals between rounds...
MAX_BACKOFF_FACTOR = 8
# ... and at most this many seconds (unless its interval is longer).
MAX_BACKOFF = 300.0
# How long the fingerprint last announced is kept: longer than the longest wait between two
# rounds, so that what did not change is not announced again.
MARK_INTERVALS = 2 * MAX_BACKOFF_FACTOR
MARK_SECONDS = 3600.0
# How long a loader waits for a round under way before it shows what it has.
CATCH_UP_PATIENCE = 1.0


def fingerprint(result: Any) -> str:
    """A stable hash of what ``result`` shows: its JSON (keys sorted), where a :class:`Fetched`
    counts by its value and its error in words, not by its age."""
    body = orjson.dumps(
        to_jsonable_python(_shown(result), fallback=repr),
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def _shown(value: Any) -> Any:
    if isinstance(value, Fetched):
        error = None if value.error is None else str(value.error)
        return {"value": _shown(value.value), "error": error}
    if isinstance(value, Mapping):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(item) for item in value]
    return value


def _error(result: Any) -> BaseException | None:
    return result.error if isinstance(result, Fetched) else None


@dataclass
class CoordinatorState:
    """Where one member of a coordinator stands in this process, for widgets and health checks.

    ``result`` is what the coordinator's ``fetch`` returned last (a :class:`Fetched`, usually:
    the value, or the last good one with the error that stopped a refresh). A round fails when
    ``fetch`` raises or hands back a ``Fetched`` with an error.
    """

    coordinator: str
    key: str
    # The member's identity, as its events tell it ({"instance": "Radarr 4K", ...}); {} for a
    # coordinator of one.
    about: Mapping[str, Any]
    result: Any = None
    fingerprint: str | None = None
    rounds: int = 0
    last_success_at: datetime | None = None
    last_error: BaseException | None = None
    last_error_at: datetime | None = None
    # Failed rounds in a row, and since when.
    failures: int = 0
    failing_since: datetime | None = None
    next_run_at: datetime | None = None
    member: Any = field(default=None, repr=False)
    # loop.time() of the next scheduled round, and of the end of the last round.
    _due: float = field(default=0.0, repr=False)
    _read_at: float = field(default=0.0, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # Whether the last round failed by raising (it is logged, and so is its recovery).
    _raised: bool = field(default=False, repr=False)
    # Set by Coordinator.forget(): what was read is out of date, the next reader reads again.
    _forgotten: bool = field(default=False, repr=False)

    @property
    def failing(self) -> bool:
        return self.failures > 0

    @property
    def value(self) -> Any:
        """The data of the last result (a ``Fetched``'s value), ``None`` before any."""
        return self.result.value if isinstance(self.result, Fetched) else self.result

    @property
    def label(self) -> str:
        """The member's name in the log and in health checks: the first value it is told by
        ("Radarr 4K"), or the coordinator's name for a coordinator of one."""
        return str(next(iter(self.about.values()), self.coordinator))

    def named(self, what: str) -> str:
        """``what`` about this member: "arr.queue (Radarr 4K)", or "tautulli.activity"."""
        return f"{what} ({self.label})" if self.about else what


@dataclass
class _Activation:
    """A coordinator's members and their states, in one activation of its plugin."""

    states: dict[str, CoordinatorState] = field(default_factory=dict)
    listed: bool = False


class Coordinator(Generic[T]):
    """Polls one thing of a plugin on an interval and announces each change of it, once.

    ``fetch`` reads it (through the service client, with ``interval`` as the cache TTL); it may
    take ``plugin``, ``member`` and ``interval``, and returns a :class:`Fetched` (or any value
    whose JSON says what a widget shows), or ``None`` when there is nothing to read (the
    service is not set up): nothing is announced then. ``interval`` is seconds, or a function
    of the plugin's ``settings`` (or ``plugin``) giving them: a plugin setting, best bounded
    (``Field(ge=..., le=...)``). ``topic`` defaults to ``"<plugin>.<name>"``.

    ``each`` (taking ``plugin``) lists the members to poll one by one (a plugin's instances);
    ``about(member)`` is each one's identity, told in its events and naming its state (its
    first value names the member in the log).
    ``summary(result)`` adds to an event what subscribers may learn (counts, never names);
    events carry ``ok``, false when the result holds an error. ``after``, when set, runs after
    each round's announcement (with ``plugin``, ``member``, ``result`` and ``interval``), for
    work that follows from what was read.

    Declared once at import; what it knows is kept per plugin activation, in each process.
    """

    def __init__(
        self,
        name: str,
        fetch: Callable[..., Awaitable[T]],
        *,
        interval: float | Callable[..., float],
        topic: str | None = None,
        summary: Callable[[T], Mapping[str, Any]] | None = None,
        each: Callable[..., Iterable[Any]] | None = None,
        about: Callable[[Any], Mapping[str, Any]] | None = None,
        after: Callable[..., Awaitable[None]] | None = None,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.name = name
        self.fetch = fetch
        self.interval = interval
        self.topic = topic
        self.summary = summary
        self.each = each
        self.about = about
        self.after = after
        self.max_backoff = max_backoff

    def __repr__(self) -> str:
        return f"Coordinator({self.name!r})"

    # --- what widgets and health checks read ------------------------------------------------

    def topic_of(self, plugin: str) -> str:
        """The topic this coordinator announces on, for the plugin named ``plugin``."""
        return self.topic or f"{plugin}.{self.name}"

    def interval_of(self, plugin: PluginContext) -> float:
        """Seconds between rounds under the plugin's current settings."""
        if callable(self.interval):
            return float(call_with(self.interval, settings=plugin.settings, plugin=plugin))
        return float(self.interval)

    def state(self, plugin: PluginContext, member: Any = None) -> CoordinatorState:
        """Where ``member`` (or the only member) stands in this process."""
        return self._state(plugin, member)

    def states(self, plugin: PluginContext) -> list[CoordinatorState]:
        """Every member's state, in the order ``each`` lists them."""
        return list(self._activation(plugin).states.values())

    async def latest(self, plugin: PluginContext, member: Any = None) -> T:
        """What was read last for ``member`` (or the only member): for a widget's loader.

        Before the first round, one is run (with the poller's, if it is under way). When
        another process announced something newer, this one catches up first, from the shared
        cache; waiting at most :data:`CATCH_UP_PATIENCE` for a round under way. Raises when
        ``fetch`` raised and nothing was ever read.
        """
        state = self._state(plugin, member)
        if not state.rounds or state._forgotten:
            async with state._lock:
                if not state.rounds or state._forgotten:
                    await self._round(plugin, state)
        elif self._late(plugin, state) or await self._behind(plugin, state):
            await self._catch_up(plugin, state)
        if state.result is None and state._raised:
            # Nothing was ever read: the tile says why rather than show nothing.
            raise RuntimeError(f"{state.named(self.name)} could not be read: {state.last_error}")
        result: T = state.result
        return result

    async def load(self, plugin: PluginContext) -> Any:
        """The loader of a widget that names this coordinator and has none of its own: the
        latest result, or a list of them, one per member, for a coordinator of several."""
        if self.each is None:
            return await self.latest(plugin)
        members = [state.member for state in self.states(plugin)]
        return [await self.latest(plugin, member) for member in members]

    def health(self, plugin: PluginContext) -> list[HealthResult]:
        """A :class:`HealthResult` per member: "ok" with when it was last read, "degraded"
        (failing, the last good data still shown) or "down" (failing, nothing to show)."""
        return [_health(state) for state in self.states(plugin)]

    # --- rounds ---------------------------------------------------------------------------

    async def refresh_now(
        self, plugin: PluginContext, member: Any = None, *, again: bool = False
    ) -> None:
        """Run a round now for ``member`` (or for every member), whatever the schedule, and
        return once its announcement is made: after news that the data changed (a webhook),
        and in tests, which then need not count rounds by the clock. ``again``: the service is
        asked, not the cache (read within the interval). The next scheduled round comes an
        interval later."""
        states = [self._state(plugin, member)] if member is not None else self.states(plugin)
        with asking_the_services(again=again):
            await asyncio.gather(*(self._scheduled(plugin, state) for state in states))

    async def forget(self, plugin: PluginContext) -> None:
        """Forget what was announced and read (after a change that makes it wrong: a new
        token), so that the next round announces what it finds, on every process."""
        for state in self.states(plugin):
            await plugin.cache.delete(self._mark(plugin, state))
            state.fingerprint, state._forgotten = None, True

    def poller(self) -> Poller:
        """The poller that runs this coordinator's rounds while its plugin is active."""
        return Poller(self.name, self._until_due, self._run_due, coordinator=self)

    async def _run_due(self, plugin: PluginContext) -> None:
        now = asyncio.get_running_loop().time()
        due = [state for state in self.states(plugin) if state._due <= now]
        await asyncio.gather(*(self._scheduled(plugin, state, by=now) for state in due))

    def _until_due(self, plugin: PluginContext) -> float:
        """How long the poller sleeps: until the next member is due, and at most an interval,
        so that a member brought forward (a success on demand, ending a backoff) is seen."""
        interval = self.interval_of(plugin)
        due = [state._due for state in self.states(plugin)]
        if not due:
            return interval
        return max(0.0, min(min(due) - asyncio.get_running_loop().time(), interval))

    async def _scheduled(
        self, plugin: PluginContext, state: CoordinatorState, *, by: float | None = None
    ) -> None:
        """A round that moves the schedule on; with ``by``, only if it is still due by then
        once the lock is taken (a round on demand may have come first)."""
        async with state._lock:
            if by is not None and state._due > by:
                return
            await self._round(plugin, state)
            delay = self._delay(plugin, state.failures)
            # From the end of the round: a read cached with the interval as TTL is stale by then.
            state._due = asyncio.get_running_loop().time() + delay
            state.next_run_at = datetime.now(UTC) + timedelta(seconds=delay)

    def _delay(self, plugin: PluginContext, failures: int) -> float:
        interval = self.interval_of(plugin)
        if not failures:
            return interval
        longest = max(interval, min(interval * MAX_BACKOFF_FACTOR, self.max_backoff))
        return min(interval * 2**failures, longest)

    async def _round(self, plugin: PluginContext, state: CoordinatorState) -> None:
        """Read, keep, announce if changed; never raises (but for cancellation)."""
        try:
            await self._read(plugin, state)
        finally:
            state._read_at = asyncio.get_running_loop().time()

    async def _read(self, plugin: PluginContext, state: CoordinatorState) -> None:
        try:
            result = await resolve(
                call_with(
                    self.fetch,
                    plugin=plugin,
                    member=state.member,
                    interval=self.interval_of(plugin),
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.rounds += 1
            self._raised(plugin, state, exc)
            return
        state.result, state.rounds, state._forgotten = result, state.rounds + 1, False
        self._note(plugin, state, _error(result))
        if result is None:
            return  # nothing to read (not set up yet): nothing to announce
        try:
            await self._announce(plugin, state, result)
            if self.after is not None:
                await resolve(
                    call_with(
                        self.after,
                        plugin=plugin,
                        member=state.member,
                        result=result,
                        interval=self.interval_of(plugin),
                    )
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._raised(plugin, state, exc)

    def _raised(self, plugin: PluginContext, state: CoordinatorState, exc: Exception) -> None:
        if not state._raised:  # once, not every round while it goes on failing
            plugin.log.error("%s failed", state.named(self.name), exc_info=exc)
        self._note(plugin, state, exc, raised=True)

    def _note(
        self,
        plugin: PluginContext,
        state: CoordinatorState,
        error: BaseException | None,
        *,
        raised: bool = False,
    ) -> None:
        now = datetime.now(UTC)
        if error is None:
            if state._raised:
                plugin.log.warning("%s recovered", state.named(self.name))
            state.failures, state.failing_since, state.last_success_at = 0, None, now
            state._raised = False
            return
        state.failures += 1
        state.failing_since = state.failing_since or now
        state.last_error, state.last_error_at, state._raised = error, now, raised

    async def _announce(self, plugin: PluginContext, state: CoordinatorState, result: T) -> None:
        mark = fingerprint(result)
        state.fingerprint = mark
        ttl = max(MARK_SECONDS, self.interval_of(plugin) * MARK_INTERVALS)
        if await plugin.cache.swap(self._mark(plugin, state), mark, ttl) == mark:
            return
        topic = self.topic_of(plugin.name)
        error = _error(result)
        if error is not None:
            plugin.log.warning("%s: %s", state.named(topic), error)
        event = {**state.about, "ok": error is None}
        if self.summary is not None:
            event |= self.summary(result)
        await plugin.publish(topic, "updated", event)

    def _late(self, plugin: PluginContext, state: CoordinatorState) -> bool:
        """Whether no round came when one was due, and an interval more: no poller runs here
        (a process that only serves a plugin's hooks)."""
        waited = asyncio.get_running_loop().time() - state._read_at
        return waited > self._delay(plugin, state.failures) + self.interval_of(plugin)

    async def _behind(self, plugin: PluginContext, state: CoordinatorState) -> bool:
        return await plugin.cache.get(self._mark(plugin, state)) != state.fingerprint

    async def _catch_up(self, plugin: PluginContext, state: CoordinatorState) -> None:
        try:
            async with asyncio.timeout(CATCH_UP_PATIENCE):
                await state._lock.acquire()
        except TimeoutError:
            return  # a round is under way: what it reads is announced when it is done
        try:
            await self._round(plugin, state)
        finally:
            state._lock.release()

    # --- state per activation -----------------------------------------------------------------

    def _mark(self, plugin: PluginContext, state: CoordinatorState) -> str:
        return f"coordinator:{self.topic_of(plugin.name)}:{state.key}"

    def _activation(self, plugin: PluginContext) -> _Activation:
        found = plugin._coordinated.get(self)
        if found is None:
            found = plugin._coordinated[self] = _Activation()
        if not found.listed:
            members = [None] if self.each is None else list(call_with(self.each, plugin=plugin))
            for member in members:
                self._add(found, member)
            found.listed = True
        return found

    def _state(self, plugin: PluginContext, member: Any) -> CoordinatorState:
        activation = self._activation(plugin)
        if member is None and self.each is not None:
            raise ValueError(f"{self.name} polls several members: say which")
        about = self._about(member)
        state = activation.states.get(_key(about))
        return state if state is not None else self._add(activation, member)

    def _add(self, activation: _Activation, member: Any) -> CoordinatorState:
        about = self._about(member)
        state = CoordinatorState(self.name, _key(about), about, member=member)
        activation.states[state.key] = state
        return state

    def _about(self, member: Any) -> Mapping[str, Any]:
        if member is None or self.about is None:
            return {}
        return dict(self.about(member))


def _key(about: Mapping[str, Any]) -> str:
    return "|".join(f"{name}={value}" for name, value in about.items())


def _health(state: CoordinatorState) -> HealthResult:
    name = state.label
    if not state.rounds:
        return HealthResult(name, "ok", "Not read yet.")
    if not state.failing:
        read = f"{state.last_success_at:%H:%M:%S}" if state.last_success_at else "never"
        after = f"; next at {state.next_run_at:%H:%M:%S}" if state.next_run_at else ""
        return HealthResult(name, "ok", f"Read at {read}{after}.")
    since = f"{state.failing_since:%H:%M}" if state.failing_since else "now"
    retry = f"; next try at {state.next_run_at:%H:%M:%S}" if state.next_run_at else ""
    shown = state.value is not None
    return HealthResult(
        name,
        "degraded" if shown else "down",
        f"Failing since {since} ({state.failures} round(s)): {state.last_error}{retry}.",
    )


# --- what a plugin's declarations imply ---------------------------------------------------------


def coordinated(
    plugin: str, widgets: list[Widget], pollers: list[Any], topics: list[str]
) -> tuple[list[Widget], list[Poller], list[str]]:
    """A plugin's widgets, pollers and topics with what its coordinators imply: a widget
    naming one takes its topic (and its loader, when it has none); each coordinator (named by
    a widget, or registered as a poller) is run by a poller and announces on a topic of the
    plugin's."""
    found: list[Coordinator[Any]] = []
    shown = []
    for widget in widgets:
        coordinator = widget.coordinator
        if coordinator is not None:
            found.append(coordinator)
            widget = replace(
                widget,
                topic=widget.topic or coordinator.topic_of(plugin),
                load=coordinator.load if widget.load is _no_loader else widget.load,
            )
        shown.append(widget)
    run = []
    for poller in pollers:
        if isinstance(poller, Coordinator):
            found.append(poller)
        else:
            run.append(poller)
    unique = list(dict.fromkeys(found))
    run += [coordinator.poller() for coordinator in unique]
    topics = list(dict.fromkeys([*topics, *(c.topic_of(plugin) for c in unique)]))
    return shown, run, topics


def default_template_dirs(module: Any) -> list[Path]:
    """The ``templates`` folder beside a plugin's package, for a plugin that names none."""
    if not isinstance(module, ModuleType) or not getattr(module, "__file__", None):
        return []
    folder = Path(str(module.__file__)).parent / "templates"
    return [folder] if folder.is_dir() else []
