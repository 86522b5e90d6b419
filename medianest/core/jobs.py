"""Background work: the pollers plugins register, and the job queue for long work.

Each poller is one task that runs, then sleeps its interval. A failure is logged once and its
recovery is logged as such, so a dead upstream does not flood the log. When the first rounds of
the pollers started together are all over, the memory they freed goes back to the system.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .extensions import PluginContext, Poller, call_with, resolve
from .http import waiting_for_services
from .memory import give_back
from .metrics import JOBS

if TYPE_CHECKING:
    from saq.types import Context

log = logging.getLogger(__name__)


class PollerRunner:
    """Starts and stops each plugin's pollers as the plugin is activated and deactivated."""

    def __init__(self) -> None:
        self._tasks: dict[str, list[asyncio.Task[None]]] = defaultdict(list)
        # Pollers whose first round is under way.
        self._first_rounds = 0

    def running(self, plugin: str) -> int:
        return sum(1 for task in self._tasks.get(plugin, ()) if not task.done())

    def start(self, ctx: PluginContext, pollers: list[Poller]) -> None:
        for poller in pollers:
            task = asyncio.create_task(
                self._loop(ctx, poller), name=f"poller:{ctx.name}:{poller.name}"
            )
            self._tasks[ctx.name].append(task)

    async def stop(self, plugin: str) -> None:
        tasks = self._tasks.pop(plugin, [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        for plugin in list(self._tasks):
            await self.stop(plugin)

    async def _loop(self, ctx: PluginContext, poller: Poller) -> None:
        waiting_for_services()
        failing = False
        self._first_rounds += 1
        try:
            failing = await self._round(ctx, poller, failing)
        finally:
            self._first_rounds -= 1
            if not self._first_rounds:
                give_back()
        while True:
            await asyncio.sleep(_interval(ctx, poller))
            failing = await self._round(ctx, poller, failing)

    async def _round(self, ctx: PluginContext, poller: Poller, failing: bool) -> bool:
        """One run of ``poller``; whether it is failing now."""
        try:
            await resolve(call_with(poller.run, plugin=ctx))
        except asyncio.CancelledError:
            raise
        except Exception:
            if not failing:
                log.exception("poller %s:%s failed", ctx.name, poller.name)
            return True
        if failing:
            log.warning("poller %s:%s recovered", ctx.name, poller.name)
        return False


def _interval(ctx: PluginContext, poller: Poller) -> float:
    if callable(poller.interval):
        return float(call_with(poller.interval, plugin=ctx))
    return poller.interval


# --- the job queue ---------------------------------------------------------------------------
#
# Long work (a download, say) goes through a queue rather than a poller. With Redis configured
# the queue is SAQ's, in Redis: it survives a restart of the web process, and `medianest worker`
# processes consume it, each job exactly once (SAQ's job keys), retried with backoff, abortable,
# and re-run when the worker running it stops sending heartbeats. In the embedded default the
# same job functions run in the web process, on an in-memory queue with the same rules.


@dataclass
class JobRun:
    """One attempt at a job, handed to the job's function as ``run``."""

    key: str
    attempt: int
    attempts: int
    _touch: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    @property
    def last_attempt(self) -> bool:
        """No attempt follows this one if it fails."""
        return self.attempt >= self.attempts

    async def heartbeat(self) -> None:
        """Say the job is still alive; a job silent for longer than its ``heartbeat`` is
        considered lost (its worker died) and is run again."""
        if self._touch is not None:
            await self._touch()


@dataclass(frozen=True)
class JobType:
    """A kind of job: the function that runs it and how failures are handled.

    ``function(run=JobRun, **kwargs)`` runs one attempt; raising makes another attempt after
    ``retry_delay`` seconds, doubled each time (at most ``attempts`` in all). ``heartbeat`` is
    how long the job may stay silent before it counts as lost (0: never).
    """

    name: str
    function: Callable[..., Awaitable[Any]]
    attempts: int = 3
    retry_delay: float = 2.0
    heartbeat: int = 60


class JobQueue:
    """The in-process queue of the embedded default; the base of :class:`RedisJobQueue`.

    Plugins register their job types when they are activated (``plugin.jobs.register``) and
    enqueue work by key: a key already queued or running is not queued twice.
    """

    def __init__(self, concurrency: int = 3) -> None:
        self.types: dict[str, JobType] = {}
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = 0

    def register(self, job_type: JobType) -> None:
        """Make ``job_type`` runnable (a later registration under the same name replaces it)."""
        self.types[job_type.name] = job_type

    def _type(self, name: str) -> JobType:
        try:
            return self.types[name]
        except KeyError:
            raise LookupError(f"no job type {name!r} is registered") from None

    async def enqueue(self, name: str, key: str, **kwargs: Any) -> bool:
        """Queue a job of type ``name``; False when a job of that key is already queued or
        running."""
        job_type = self._type(name)
        running = self._tasks.get(key)
        if running is not None and not running.done():
            return False
        task = asyncio.create_task(self._run(job_type, key, kwargs), name=f"job:{name}:{key}")
        self._tasks[key] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(key, None) if self._tasks.get(key) is t else None
        )
        return True

    async def depth(self) -> int:
        """How many jobs wait for a free slot."""
        return max(len(self._tasks) - self._running, 0)

    async def _run(self, job_type: JobType, key: str, kwargs: dict[str, Any]) -> None:
        for attempt in range(1, job_type.attempts + 1):
            async with self._slots:
                self._running += 1
                try:
                    await job_type.function(run=JobRun(key, attempt, job_type.attempts), **kwargs)
                    JOBS.labels(job_type.name, "ok").inc()
                    return
                except asyncio.CancelledError:
                    JOBS.labels(job_type.name, "cancelled").inc()
                    raise
                except Exception:
                    last = attempt == job_type.attempts
                    JOBS.labels(job_type.name, "failed" if last else "retried").inc()
                    log.exception("job %s (%s) failed, attempt %d", key, job_type.name, attempt)
                finally:
                    self._running -= 1
            if attempt < job_type.attempts:
                await asyncio.sleep(job_type.retry_delay * 2 ** (attempt - 1))

    async def abort(self, key: str, reason: str) -> None:
        """Stop the job ``key`` (queued or running); its function sees CancelledError."""
        task = self._tasks.get(key)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class RedisJobQueue(JobQueue):
    """The queue in Redis, through SAQ; ``medianest worker`` runs its jobs."""

    # One SAQ function runs every job type: the type is looked up when the job runs, so a
    # plugin re-activated with new settings runs the next job with them.
    FUNCTION = "medianest.job"

    def __init__(self, redis_url: str, concurrency: int = 3, sweep_interval: int = 30) -> None:
        from saq import Queue

        super().__init__(concurrency)
        self.sweep_interval = sweep_interval
        self.queue = Queue.from_url(redis_url, name="medianest")

    async def enqueue(self, name: str, key: str, **kwargs: Any) -> bool:
        job_type = self._type(name)
        job = await self.queue.enqueue(
            self.FUNCTION,
            key=key,
            kwargs={"job_type": name, "arguments": kwargs},
            retries=job_type.attempts,
            retry_delay=job_type.retry_delay,
            retry_backoff=True,
            heartbeat=job_type.heartbeat,
            timeout=0,
            ttl=3600,
        )
        return job is not None

    async def abort(self, key: str, reason: str) -> None:
        from saq.job import TERMINAL_STATUSES

        job = await self.queue.job(key)
        if job is not None and job.status not in TERMINAL_STATUSES:
            await self.queue.abort(job, reason)

    async def _dispatch(self, ctx: Context, *, job_type: str, arguments: Any) -> None:
        job = ctx.get("job")
        assert job is not None
        run = JobRun(job.key, job.attempts, job.retries, job.update)
        try:
            await self._type(job_type).function(run=run, **arguments)
        except asyncio.CancelledError:
            JOBS.labels(job_type, "cancelled").inc()
            raise
        except Exception:
            JOBS.labels(job_type, "failed" if run.last_attempt else "retried").inc()
            raise
        JOBS.labels(job_type, "ok").inc()

    async def depth(self) -> int:
        return int(await self.queue.count("queued"))

    async def work(self) -> None:
        """Consume the queue until cancelled or signalled (``medianest worker``)."""
        from saq import Worker
        from saq.types import PartialTimersDict

        worker = Worker(
            self.queue,
            functions=[(self.FUNCTION, self._dispatch)],
            concurrency=self.concurrency,
            timers=PartialTimersDict(
                schedule=1, worker_info=10, sweep=self.sweep_interval, abort=1
            ),
            shutdown_grace_period_s=5,
        )
        await worker.start()

    async def close(self) -> None:
        try:
            await self.queue.disconnect()
        except Exception as exc:  # Redis went away first: nothing is left to hand back
            log.warning("closing the job queue: %s", exc)


def job_queue(redis_url: str | None, concurrency: int = 3, sweep_interval: int = 30) -> JobQueue:
    """The queue of an installation: in Redis when it has one, else in this process."""
    if redis_url:
        return RedisJobQueue(redis_url, concurrency, sweep_interval)
    return JobQueue(concurrency)
