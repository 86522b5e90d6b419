"""In-process background work: the pollers plugins register, run while their plugin is active.

Each poller is one task that runs, then sleeps its interval. A failure is logged once and its
recovery is logged as such, so a dead upstream does not flood the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from .extensions import PluginContext, Poller, call_with, resolve

log = logging.getLogger(__name__)


class PollerRunner:
    """Starts and stops each plugin's pollers as the plugin is activated and deactivated."""

    def __init__(self) -> None:
        self._tasks: dict[str, list[asyncio.Task[None]]] = defaultdict(list)

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
        failing = False
        while True:
            try:
                await resolve(call_with(poller.run, plugin=ctx))
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    log.exception("poller %s:%s failed", ctx.name, poller.name)
                    failing = True
            else:
                if failing:
                    log.warning("poller %s:%s recovered", ctx.name, poller.name)
                    failing = False
            await asyncio.sleep(poller.interval)
