"""The calls the Plex plugin makes to plex.tv (API v2, JSON) and to the Plex Media Server.

Kept in one small module so that the transport can change (retries, circuit breaking) without
touching the sign-in flow. Every failure to get a usable answer becomes one of three
exceptions: :class:`Unreachable` (no answer, a timeout, a server error or a body that is not
the JSON expected), :class:`PinGone` (plex.tv no longer knows the PIN) and :class:`Refused`
(plex.tv or the server turned the token down).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from medianest import __version__

PRODUCT = "MediaNest"
# Connecting and each read give up after a few seconds: a sign-in page must not hang.
TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=5, sock_read=5)


class PlexError(Exception):
    """Something went wrong talking to plex.tv or the Plex server."""


class Unreachable(PlexError):
    """No usable answer from ``service`` ("plex.tv" or "server")."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service


class PinGone(PlexError):
    """plex.tv answers 404 for the PIN: unknown or expired."""


class _NotFound(PlexError):
    pass


class Refused(PlexError):
    """plex.tv or the server answered 401 or 403 for the token."""


@dataclass(frozen=True)
class Pin:
    id: int
    code: str
    expires_in: int
    auth_token: str | None


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=TIMEOUT)


def client_headers(client_id: str) -> dict[str, str]:
    """What plex.tv wants to know of every client: which installation, which product."""
    return {
        "X-Plex-Client-Identifier": client_id,
        "X-Plex-Product": PRODUCT,
        "X-Plex-Version": __version__,
        "X-Plex-Device": "MediaNest server",
        "X-Plex-Platform": platform.system() or "Unknown",
        "Accept": "application/json",
    }


def _pin(data: Any) -> Pin:
    try:
        return Pin(
            id=int(data["id"]),
            code=str(data["code"]),
            expires_in=int(data["expiresIn"]),
            auth_token=data.get("authToken") or None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unreachable("plex.tv", f"unexpected PIN answer: {type(exc).__name__}") from None


class PlexClient:
    """plex.tv and the configured Plex Media Server, for one installation."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        plex_tv_url: str,
        client_id: str,
        server_url: str | None = None,
        server_token: str | None = None,
    ) -> None:
        self._session = session
        self._plex_tv = plex_tv_url.rstrip("/") + "/api/v2"
        self._server = server_url.rstrip("/") if server_url else None
        self._server_token = server_token
        self.headers = client_headers(client_id)

    async def _get_json(
        self,
        service: str,
        method: str,
        url: str,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        not_found: type[PlexError] | None = None,
    ) -> Any:
        headers = dict(self.headers)
        if token:
            headers["X-Plex-Token"] = token
        try:
            async with self._session.request(method, url, headers=headers, params=params) as resp:
                if resp.status == 404:
                    raise _NotFound(f"{method} {url}: 404")
                if resp.status in (401, 403):
                    raise Refused(f"{method} {url}: {resp.status}")
                if resp.status >= 300:
                    raise Unreachable(service, f"{method} {url}: HTTP {resp.status}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, _NotFound) as exc:
            if isinstance(exc, _NotFound) and not_found is not None:
                raise not_found(str(exc)) from None
            # The type and str() only: the repr of some aiohttp errors holds the request's
            # headers, and with them the token.
            raise Unreachable(service, f"{method} {url}: {type(exc).__name__}: {exc}") from None

    # --- plex.tv -----------------------------------------------------------------------

    async def create_pin(self) -> Pin:
        """A new strong PIN for the browser to approve on app.plex.tv."""
        data = await self._get_json(
            "plex.tv", "POST", f"{self._plex_tv}/pins", params={"strong": "true"}
        )
        return _pin(data)

    async def check_pin(self, pin_id: int) -> Pin:
        """The PIN as plex.tv has it now; ``auth_token`` is set once the user approved it."""
        data = await self._get_json(
            "plex.tv", "GET", f"{self._plex_tv}/pins/{pin_id}", not_found=PinGone
        )
        return _pin(data)

    async def account(self, token: str) -> dict[str, Any]:
        data = await self._get_json("plex.tv", "GET", f"{self._plex_tv}/user", token=token)
        if not isinstance(data, dict) or "id" not in data:
            raise Unreachable("plex.tv", "unexpected account answer")
        return data

    async def resources(self, token: str) -> list[dict[str, Any]]:
        """The servers and devices the account can reach (its own and those shared with it)."""
        data = await self._get_json(
            "plex.tv",
            "GET",
            f"{self._plex_tv}/resources",
            token=token,
            params={"includeHttps": "1", "includeRelay": "1"},
        )
        if not isinstance(data, list):
            raise Unreachable("plex.tv", "unexpected resources answer")
        return [r for r in data if isinstance(r, dict)]

    # --- the Plex Media Server ----------------------------------------------------------

    async def server_identity(self) -> str:
        """The configured server's ``machineIdentifier`` (no token needed)."""
        assert self._server is not None
        data = await self._get_json("server", "GET", f"{self._server}/identity")
        try:
            return str(data["MediaContainer"]["machineIdentifier"])
        except (KeyError, TypeError):
            raise Unreachable("server", "unexpected identity answer") from None

    async def server_name(self) -> str | None:
        """The server's ``friendlyName``; needs the plugin's token (``None`` without one)."""
        if self._server is None or not self._server_token:
            return None
        data = await self._get_json("server", "GET", f"{self._server}/", token=self._server_token)
        try:
            name = data["MediaContainer"]["friendlyName"]
        except (KeyError, TypeError):
            return None
        return str(name) if name else None


def deadline(pin: Pin) -> float:
    """When the PIN expires, on this machine's clock."""
    return time.time() + pin.expires_in
