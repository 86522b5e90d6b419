"""A real MediaNest on a loopback port, for a plugin's tests: what a plugin author needs to test
without reaching into MediaNest's internals.

    async with Portal(tmp_path, plugins=[("myplugin", myplugin)]) as portal:
        admin = await portal.admin()
        await admin.configure("myplugin", {"url": fake.url})
        events = await admin.subscribe("myplugin.status")
        await portal.poll("myplugin")
        await events.next("myplugin.status", "updated")

Everything goes through MediaNest's own HTTP API and websocket, as a browser or a script would;
the one shortcut is :meth:`Portal.poll`, which runs a plugin's pollers now instead of waiting
for their interval (so that tests never count on the clock).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from ..app import create_app
from ..core.auth import DEFAULT_PERMISSIONS, admin_exists, create_local_user
from ..core.extensions import call_with, resolve
from ..core.keys import ENGINE, REGISTRY
from ..core.settings import Settings, load_settings

ADMIN = ("admin", "correct horse battery")


class SettingsRefused(AssertionError):
    """The portal refused a plugin's settings; ``details`` says which field and why."""

    def __init__(self, status: int, answer: dict[str, Any]) -> None:
        error = answer.get("error", {})
        self.message = str(error.get("message", answer))
        super().__init__(f"{status}: {self.message}")
        self.status = status
        self.details: list[dict[str, Any]] = list(error.get("details") or [])


class Events:
    """What a websocket client receives, kept, so that events of several topics can be waited
    for in any order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.unread: list[dict[str, Any]] = []

    async def next(
        self, topic: str, event: str | None = None, within: float = 5.0, **expected: Any
    ) -> dict[str, Any]:
        """The first event not read yet on ``topic`` (named ``event``) whose data has the
        ``expected`` values; fails after ``within`` seconds."""

        def matches(message: dict[str, Any]) -> bool:
            data = message.get("data", {})
            return (
                message.get("topic") == topic
                and (event is None or message.get("event") == event)
                and all(data.get(k) == v for k, v in expected.items())
            )

        deadline = time.monotonic() + within
        while True:
            for message in self.unread:
                if matches(message):
                    self.unread.remove(message)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {topic} {event or ''} {expected} in {self.unread}")
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                continue
            assert msg.type is WSMsgType.TEXT, msg
            self.unread.append(orjson.loads(msg.data))

    async def close(self) -> None:
        await self.ws.close()


async def subscribe(ws: Any, topics: list[str]) -> None:
    """Subscribe an open websocket of the portal to ``topics``; fails unless all are granted."""
    await ws.send_json({"action": "subscribe", "topics": topics})
    reply = orjson.loads((await ws.receive(timeout=5)).data)
    assert reply == {"type": "subscribed", "topics": topics}, reply


class PortalClient(TestClient):
    """An HTTP client of the portal that, once signed in, sends its session's CSRF token with
    state changes, as MediaNest's own pages do."""

    csrf: str | None = None
    username: str | None = None
    # A client of a Portal shares the portal's server: closing it leaves the server running
    # for the portal's other clients (the portal closes it).
    shares_server = False

    async def close(self) -> None:
        if not self.shares_server:
            await super().close()
            return
        for ws in list(self._websockets):
            await ws.close()
        await self.session.close()

    async def _request(self, method: str, path: Any, **kwargs: Any) -> Any:
        if self.csrf and method.upper() not in ("GET", "HEAD", "OPTIONS"):
            kwargs["headers"] = {"X-CSRF-Token": self.csrf, **(kwargs.get("headers") or {})}
        return await super()._request(method, path, **kwargs)

    async def sign_in(self, username: str, password: str) -> None:
        resp = await self.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert resp.status == 200, await resp.text()
        me = await (await self.get("/api/v1/auth/me")).json()
        self.csrf, self.username = me["csrf_token"], username

    # --- integrations (an admin's) ------------------------------------------------------

    async def plugin(self, name: str) -> dict[str, Any]:
        """The integration as the admin API shows it (status, settings with secrets masked)."""
        resp = await self.get(f"/api/v1/plugins/{name}")
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer

    async def enable(self, name: str) -> dict[str, Any]:
        """Switch the integration on; fails unless it is then active."""
        resp = await self.post(f"/api/v1/plugins/{name}/enable")
        answer: dict[str, Any] = await resp.json()
        assert resp.status == 200, answer
        assert answer["status"] == "active", answer
        return answer

    async def disable(self, name: str) -> dict[str, Any]:
        resp = await self.post(f"/api/v1/plugins/{name}/disable")
        answer: dict[str, Any] = await resp.json()
        assert resp.status == 200, answer
        return answer

    async def configure(
        self, name: str, settings: dict[str, Any], *, enable: bool = True
    ) -> dict[str, Any]:
        """Save the integration's settings (tried for real, as on the Integrations page), then
        switch it on unless ``enable=False``. Raises :class:`SettingsRefused` when refused."""
        resp = await self.put(f"/api/v1/plugins/{name}/settings", json=settings)
        answer: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise SettingsRefused(resp.status, answer)
        if enable:
            answer = await self.enable(name)
        return answer

    async def saved_settings(self, name: str) -> dict[str, Any]:
        """The integration's settings as saved (secrets masked)."""
        return dict((await self.plugin(name))["settings"])

    async def refusal(self, name: str, settings: dict[str, Any]) -> SettingsRefused:
        """The refusal of ``settings`` (fails if they are saved)."""
        try:
            await self.configure(name, settings, enable=False)
        except SettingsRefused as refused:
            return refused
        raise AssertionError(f"the settings of {name} were saved: {settings}")

    # --- live events and tokens -----------------------------------------------------------

    async def subscribe(self, *topics: str) -> Events:
        """A websocket subscribed to ``topics``; close it with ``await events.close()``."""
        ws = await self.ws_connect("/ws")
        await subscribe(ws, list(topics))
        return Events(ws)

    async def api_token(self, name: str = "tests") -> str:
        """A new API token of this user, for ``Authorization: Bearer`` (scripts, curl)."""
        resp = await self.post("/api/v1/tokens", json={"name": name})
        answer = await resp.json()
        assert resp.status == 201, answer
        return str(answer["token"])


class Portal:
    """MediaNest on a loopback port with its embedded default (a SQLite file in ``data_dir``,
    the in-memory cache, in-process jobs), or on the ``database_url`` and ``redis_url`` given.

    ``plugins`` registers plugin objects that are not installed as packages; installed ones
    (the built-in integrations included) are there as for any installation, disabled until
    enabled.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        plugins: Iterable[tuple[str, ModuleType | object]] = (),
        database_url: str | None = None,
        redis_url: str | None = None,
        **settings: Any,
    ) -> None:
        database_url = database_url or f"sqlite:///{Path(data_dir) / 'medianest.db'}"
        self.settings: Settings = load_settings(
            data_dir=data_dir, database_url=database_url, redis_url=redis_url, **settings
        )
        self._plugins = list(plugins)
        self._server: TestServer | None = None
        self._clients: list[PortalClient] = []

    async def __aenter__(self) -> Portal:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = await create_app(self.settings, extra_plugins=self._plugins)
        self._server = TestServer(app)
        await self._server.start_server()

    @property
    def app(self) -> web.Application:
        assert self._server is not None, "the portal is not started"
        return self._server.app

    @property
    def db(self) -> AsyncEngine:
        """The portal's database, for a test to look at a plugin's own tables."""
        return self.app[ENGINE]

    @property
    def url(self) -> str:
        assert self._server is not None, "the portal is not started"
        return str(self._server.make_url("")).rstrip("/")

    async def anonymous(self) -> PortalClient:
        """A client that has not signed in."""
        assert self._server is not None, "the portal is not started"
        client = PortalClient(self._server)
        client.shares_server = True
        await client.start_server()
        self._clients.append(client)
        return client

    async def admin(self) -> PortalClient:
        """A client signed in as an administrator (created the first time)."""
        if not await admin_exists(self.app[ENGINE]):
            await create_local_user(self.app[ENGINE], *ADMIN, role="admin")
        client = await self.anonymous()
        await client.sign_in(*ADMIN)
        return client

    async def user(
        self,
        username: str,
        password: str = "a user's long password",
        *,
        permissions: Iterable[str] | None = None,
    ) -> PortalClient:
        """A client signed in as a new user holding ``permissions`` (a new user's by default)."""
        granted = DEFAULT_PERMISSIONS if permissions is None else frozenset(permissions)
        await create_local_user(
            self.app[ENGINE],
            username,
            password,
            role="user",
            permissions=granted,
        )
        client = await self.anonymous()
        await client.sign_in(username, password)
        return client

    async def poll(self, plugin: str) -> None:
        """Run one round of each of ``plugin``'s pollers now (it must be enabled), whatever
        their schedule: a coordinator asks its service again (not what it cached within its
        interval) and announces what changed, as on its interval."""
        registry = self.app[REGISTRY]
        record = registry.get(plugin)
        assert record.active, f"{plugin} is not active ({record.status}: {record.error})"
        context = registry.context(plugin)
        for poller in record.pollers:
            if poller.coordinator is not None:
                await poller.coordinator.refresh_now(context, again=True)
            else:
                await resolve(call_with(poller.run, plugin=context))

    async def close(self) -> None:
        for client in reversed(self._clients):
            await client.close()
        self._clients.clear()
        if self._server is not None:
            await self._server.close()
            self._server = None
