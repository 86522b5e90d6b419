"""What every fake server shares: start/stop on loopback, a log of calls, and fault controls."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass
class Faults:
    """Faults a test can switch on for a fake; every request honours them.

    ``latency`` delays each answer; ``status`` answers that HTTP status instead; ``body``
    answers a malformed body (``"html"`` where JSON is expected, or ``"truncated"`` JSON);
    ``hang`` never answers.
    """

    latency: float = 0.0
    status: int | None = None
    body: str | None = None
    hang: bool = False

    def clear(self) -> None:
        self.latency, self.status, self.body, self.hang = 0.0, None, None, False


@dataclass
class FakeServer:
    """Base of the fakes: subclasses add routes in :meth:`routes`."""

    host: str = "127.0.0.1"
    faults: Faults = field(default_factory=Faults)
    calls: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._fault_middleware])
        self.routes(app)
        return app

    async def start(self, port: int = 0) -> FakeServer:
        # A short shutdown: stopping closes the port at once, even with a hung request open.
        # No access log: it is the service's own (credentials in URLs included), not MediaNest's.
        self._runner = web.AppRunner(
            self.app(), handle_signals=False, shutdown_timeout=0.1, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port or self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Close the port (a later :meth:`start` reopens the same one)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.calls[f"{request.method} {request.path}"] += 1
        if self.faults.hang:
            await asyncio.Event().wait()
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if self.faults.status is not None:
            return web.json_response({"error": "injected fault"}, status=self.faults.status)
        if self.faults.body == "html":
            return web.Response(
                text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
            )
        if self.faults.body == "truncated":
            return web.Response(
                text='{"MediaContainer": {"size": 1, "Met', content_type="application/json"
            )
        return await handler(request)
