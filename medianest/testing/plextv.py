"""A fake plex.tv (API v2, JSON) and the app.plex.tv sign-in page, enough for the PIN flow.

Speaks ``POST /api/v2/pins``, ``GET /api/v2/pins/{id}``, ``GET /api/v2/user`` and
``GET /api/v2/resources`` as plex.tv does: the same headers required, the same refusals
(400 without ``X-Plex-Client-Identifier``, 401 with a bad token, 404 for an unknown or expired
PIN) and the same response shapes. ``/auth`` stands in for app.plex.tv: it reads the PIN code
from the URL fragment, as the real page does, and approves it for an account chosen on the page.
"""

from __future__ import annotations

import html
import itertools
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .base import FakeServer

PIN_LIFETIME = 900


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PlexAccount:
    id: int
    username: str
    email: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(15))
    title: str = ""

    def as_user(self) -> dict[str, Any]:
        """The account as ``GET /api/v2/user`` answers it (every field the spec requires)."""
        return {
            "id": self.id,
            "uuid": f"{self.id:016x}",
            "username": self.username,
            "title": self.title or self.username,
            "friendlyName": self.title or self.username,
            "email": self.email,
            "locale": None,
            "confirmed": True,
            "joinedAt": 1556281940,
            "emailOnlyAuth": False,
            "hasPassword": True,
            "protected": False,
            "thumb": f"https://plex.tv/users/{self.id:016x}/avatar?c=1",
            "authToken": self.token,
            "mailingListStatus": "active",
            "mailingListActive": False,
            "scrobbleTypes": "",
            "country": "US",
            "subscription": {
                "active": False,
                "subscribedAt": None,
                "status": "Inactive",
                "paymentService": None,
                "plan": None,
                "features": [],
            },
            "subscriptionDescription": None,
            "restricted": False,
            "anonymous": None,
            "home": False,
            "guest": False,
            "homeSize": 1,
            "homeAdmin": False,
            "maxHomeSize": 15,
            "rememberExpiresAt": int(time.time()) + 86400 * 30,
            "profile": {
                "autoSelectAudio": True,
                "defaultAudioLanguage": "en",
                "defaultSubtitleLanguage": "en",
                "autoSelectSubtitle": 0,
                "defaultSubtitleAccessibility": 0,
                "defaultSubtitleForced": 0,
                "watchedIndicator": 1,
                "mediaReviewsVisibility": 0,
            },
            "entitlements": [],
            "roles": [],
            "services": [],
            "adsConsent": None,
            "adsConsentSetAt": None,
            "adsConsentReminderAt": None,
            "experimentalFeatures": False,
            "twoFactorEnabled": False,
            "backupCodesCreated": False,
            "attributionPartner": None,
        }


@dataclass
class PlexServer:
    """A Plex Media Server as plex.tv knows it: who owns it and who it is shared with."""

    name: str
    machine_id: str
    owner: PlexAccount
    shared_with: list[PlexAccount] = field(default_factory=list)
    uri: str = "http://127.0.0.1:32400"

    def as_resource(self, viewer: PlexAccount) -> dict[str, Any]:
        owned = viewer.id == self.owner.id
        return {
            "name": self.name,
            "product": "Plex Media Server",
            "productVersion": "1.41.3.9314-a0bfb8370",
            "platform": "Linux",
            "platformVersion": "6.1",
            "device": "PC",
            "clientIdentifier": self.machine_id,
            "createdAt": "2024-01-01T00:00:00Z",
            "lastSeenAt": _iso(time.time()),
            "provides": "server",
            "ownerId": None if owned else self.owner.id,
            "sourceTitle": None if owned else self.owner.username,
            "publicAddress": "203.0.113.10",
            "accessToken": f"server-token-for-{viewer.id}",
            "owned": owned,
            "home": False,
            "synced": False,
            "relay": True,
            "presence": True,
            "httpsRequired": False,
            "publicAddressMatches": True,
            "dnsRebindingProtection": False,
            "natLoopbackSupported": True,
            "connections": [
                {
                    "protocol": "http",
                    "address": "127.0.0.1",
                    "port": 32400,
                    "uri": self.uri,
                    "local": True,
                    "relay": False,
                    "IPv6": False,
                }
            ],
        }


@dataclass
class _Pin:
    id: int
    code: str
    client_id: str
    created: float
    expires_in: int
    account: PlexAccount | None = None

    @property
    def expired(self) -> bool:
        return time.time() > self.created + self.expires_in

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "product": "0",
            "trusted": False,
            "qr": f"https://plex.tv/api/v2/pins/qr/{self.code}",
            "clientIdentifier": self.client_id,
            "location": {
                "code": "US",
                "european_union_member": False,
                "continent_code": "NA",
                "country": "United States",
                "city": "Springfield",
                "time_zone": "America/Chicago",
                "postal_code": "62701",
                "in_privacy_restricted_country": False,
                "in_privacy_restricted_region": False,
                "subdivisions": "Illinois",
                "coordinates": "39.8, -89.6",
            },
            "expiresIn": max(0, math.ceil(self.created + self.expires_in - time.time())),
            "createdAt": _iso(self.created),
            "expiresAt": _iso(self.created + self.expires_in),
            "authToken": self.account.token if self.account else None,
            "newRegistration": None,
        }


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"errors": [{"code": code, "message": message, "status": status}]}, status=status
    )


@dataclass
class FakePlexTV(FakeServer):
    """plex.tv with accounts, servers and PINs that tests control."""

    accounts: list[PlexAccount] = field(default_factory=list)
    servers: list[PlexServer] = field(default_factory=list)
    pin_lifetime: int = PIN_LIFETIME
    # Every request's headers, newest last, so tests can check what a client sent.
    requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._pins: dict[int, _Pin] = {}
        self._ids = itertools.count(308667304)

    # --- test controls -------------------------------------------------------------------

    def add_account(self, username: str, email: str | None = None) -> PlexAccount:
        account = PlexAccount(
            id=13692262 + len(self.accounts),
            username=username,
            email=email or f"{username}@example.com",
        )
        self.accounts.append(account)
        return account

    def add_server(
        self,
        name: str,
        owner: PlexAccount,
        shared_with: Sequence[PlexAccount] = (),
        machine_id: str | None = None,
    ) -> PlexServer:
        server = PlexServer(
            name=name,
            machine_id=machine_id or secrets.token_hex(20),
            owner=owner,
            shared_with=list(shared_with),
        )
        self.servers.append(server)
        return server

    def approve(self, code: str, account: PlexAccount) -> None:
        """What the user does on app.plex.tv: sign in and approve the PIN."""
        for pin in self._pins.values():
            if pin.code == code:
                pin.account = account
                return
        raise KeyError(code)

    def pins(self) -> list[dict[str, Any]]:
        return [pin.as_json() for pin in self._pins.values()]

    # --- the API -------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v2/pins", self.create_pin)
        app.router.add_get("/api/v2/pins/{pin_id}", self.get_pin)
        app.router.add_get("/api/v2/user", self.get_user)
        app.router.add_get("/api/v2/resources", self.get_resources)
        app.router.add_get("/auth", self.auth_page)
        app.router.add_post("/auth/approve", self.auth_approve)

    def _client_id(self, request: web.Request) -> str | None:
        self.requests.append(dict(request.headers))
        return request.headers.get("X-Plex-Client-Identifier")

    def _account(self, request: web.Request) -> PlexAccount | None:
        token = request.headers.get("X-Plex-Token") or request.query.get("X-Plex-Token")
        return next((a for a in self.accounts if a.token == token), None)

    async def create_pin(self, request: web.Request) -> web.Response:
        client_id = self._client_id(request)
        if not client_id:
            return _error(400, 1000, "X-Plex-Client-Identifier is missing")
        strong = request.query.get("strong", "false").lower() in ("true", "1")
        code = secrets.token_hex(12) if strong else secrets.token_hex(2).upper()
        pin = _Pin(next(self._ids), code, client_id, time.time(), self.pin_lifetime)
        self._pins[pin.id] = pin
        return web.json_response(pin.as_json(), status=201)

    async def get_pin(self, request: web.Request) -> web.Response:
        client_id = self._client_id(request)
        if not client_id:
            return _error(400, 1000, "X-Plex-Client-Identifier is missing")
        try:
            pin = self._pins[int(request.match_info["pin_id"])]
        except (KeyError, ValueError):
            return _error(404, 1020, "Code not found or expired")
        if pin.expired or pin.client_id != client_id:
            return _error(404, 1020, "Code not found or expired")
        return web.json_response(pin.as_json())

    async def get_user(self, request: web.Request) -> web.Response:
        self._client_id(request)
        account = self._account(request)
        if account is None:
            return _error(401, 1001, "User could not be authenticated")
        return web.json_response(account.as_user())

    async def get_resources(self, request: web.Request) -> web.Response:
        self._client_id(request)
        account = self._account(request)
        if account is None:
            return _error(401, 1001, "User could not be authenticated")
        visible = [
            s
            for s in self.servers
            if s.owner.id == account.id or any(a.id == account.id for a in s.shared_with)
        ]
        return web.json_response([s.as_resource(account) for s in visible])

    async def auth_page(self, request: web.Request) -> web.Response:
        options = "".join(
            f'<button type="button" data-account="{a.id}">Approve as {html.escape(a.username)}'
            "</button>"
            for a in self.accounts
        )
        return web.Response(content_type="text/html", text=_AUTH_PAGE.replace("{options}", options))

    async def auth_approve(self, request: web.Request) -> web.Response:
        data = await request.post()
        account = next((a for a in self.accounts if str(a.id) == data.get("account")), None)
        if account is None:
            return _error(400, 1000, "unknown account")
        try:
            self.approve(str(data.get("code")), account)
        except KeyError:
            return _error(404, 1020, "Code not found or expired")
        return web.json_response({"ok": True})


# Like app.plex.tv/auth, the parameters arrive in the URL fragment: #?clientID=…&code=…
_AUTH_PAGE = """<!doctype html><html><head><title>Plex</title></head><body>
<h1>Sign in to Plex</h1><p id="client"></p>{options}
<script>
const params = new URLSearchParams(location.hash.replace(/^#\\??/, ""));
document.getElementById("client").textContent =
  "Allow " + (params.get("context[device][product]") || "an app") + " to use your account";
for (const button of document.querySelectorAll("button[data-account]")) {
  button.addEventListener("click", async () => {
    const body = new URLSearchParams({code: params.get("code"), account: button.dataset.account});
    await fetch("/auth/approve", {method: "POST", body});
    location.href = params.get("forwardUrl");
  });
}
</script></body></html>"""
