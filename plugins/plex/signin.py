"""Sign in with Plex: the PIN flow of plex.tv, and who of its accounts may come in.

``/auth/plex/start`` asks plex.tv for a PIN, keeps it on the server (under a random nonce the
browser holds in a cookie) and sends the browser to app.plex.tv to approve it. app.plex.tv sends
the browser back to ``/auth/plex/callback``, which asks plex.tv about the PIN once per page
load: not approved yet, it shows a page that reloads itself every two seconds; approved, it
reads the account and lets it in if the configured Plex server is its own (the owner) or is
shared with it. Everybody else is turned away with a page that says so.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from medianest import (
    ExternalIdentity,
    PluginContext,
    limit_sign_in,
    sign_in,
    sign_in_problem,
    site_url,
)

from . import pollers
from .plextv import PinGone, PlexClient, PlexError, Refused, Unreachable

START = "/auth/plex/start"
CALLBACK = "/auth/plex/callback"
PIN_COOKIE = "medianest_plex_pin"
COOKIE_PATH = "/auth/plex"
# A pending sign-in outlives its PIN a little, so that a late page load still hears "expired".
GRACE_SECONDS = 60
IDENTITY_CACHE_SECONDS = 3600
NAME_CACHE_SECONDS = 600

NOT_CONFIGURED = (
    "Sign-in with Plex is not ready yet: an administrator must set the Plex server first "
    "(Integrations → Plex)."
)
PLEX_TV_DOWN = "plex.tv cannot be reached right now; sign in with a local account instead."
SERVER_DOWN = (
    "The Plex server cannot be reached right now, so MediaNest cannot check your access; "
    "sign in with a local account instead."
)
EXPIRED = "The Plex sign-in expired before it was approved."
TOKEN_REFUSED = "plex.tv did not accept this sign-in; try again."


def _pending_key(nonce: str) -> str:
    return f"plex:signin:{nonce}"


def client(plugin: PluginContext) -> PlexClient:
    settings = plugin.settings
    return PlexClient(
        plugin.state["http"],
        plex_tv_url=str(settings.plex_tv_url),
        client_id=plugin.installation_id,
        server_url=str(settings.url) if settings.url else None,
        server_token=settings.token.get_secret_value() if settings.token else None,
    )


def _retry(next_url: str) -> str:
    return f"{START}?{urlencode({'next': next_url})}"


def _forget_pending(response: web.StreamResponse) -> web.StreamResponse:
    response.del_cookie(PIN_COOKIE, path=COOKIE_PATH)
    return response


async def start(request: web.Request, plugin: PluginContext) -> web.StreamResponse:
    """Ask plex.tv for a PIN and send the browser to app.plex.tv to approve it."""
    await limit_sign_in(request)
    next_url = request.query.get("next") or "/"
    if plugin.settings.url is None:
        return await sign_in_problem(request, NOT_CONFIGURED, status=503)
    plex = client(plugin)
    try:
        pin = await plex.create_pin()
    except PlexError as exc:
        plugin.log.warning("cannot start a Plex sign-in: %s", exc)
        return await sign_in_problem(request, PLEX_TV_DOWN, status=503, retry=_retry(next_url))
    nonce = secrets.token_urlsafe(24)
    keep = max(pin.expires_in, 0) + GRACE_SECONDS
    pending = {"id": pin.id, "deadline": time.time() + pin.expires_in, "next": next_url}
    await plugin.cache.set(_pending_key(nonce), pending, ttl=keep)
    fragment = urlencode(
        {
            "clientID": plugin.installation_id,
            "code": pin.code,
            "context[device][product]": "MediaNest",
            "forwardUrl": site_url(request, CALLBACK),
        }
    )
    app_url = str(plugin.settings.plex_app_url)
    response = web.Response(status=303, headers={"Location": f"{app_url}#?{fragment}"})
    response.set_cookie(
        PIN_COOKIE,
        nonce,
        httponly=True,
        samesite="Lax",
        path=COOKIE_PATH,
        max_age=keep,
        secure=site_url(request).startswith("https:"),
    )
    return response


async def callback(request: web.Request, plugin: PluginContext) -> web.StreamResponse:
    """Where app.plex.tv sends the browser back: wait for the approval, then decide."""
    nonce = request.cookies.get(PIN_COOKIE)
    pending = await plugin.cache.get(_pending_key(nonce)) if nonce else None
    if nonce is None or pending is None:
        return _forget_pending(await sign_in_problem(request, EXPIRED, retry=_retry("/")))
    next_url = str(pending["next"])
    retry = _retry(next_url)
    if plugin.settings.url is None:
        return await sign_in_problem(request, NOT_CONFIGURED, status=503)
    if time.time() > float(pending["deadline"]):
        await plugin.cache.delete(_pending_key(nonce))
        return _forget_pending(await sign_in_problem(request, EXPIRED, retry=retry))
    plex = client(plugin)
    try:
        pin = await plex.check_pin(int(pending["id"]))
    except PinGone:
        await plugin.cache.delete(_pending_key(nonce))
        return _forget_pending(await sign_in_problem(request, EXPIRED, retry=retry))
    except PlexError as exc:
        plugin.log.warning("cannot check a Plex sign-in: %s", exc)
        return await sign_in_problem(request, PLEX_TV_DOWN, status=503, retry=retry)
    if pin.auth_token is None:
        return await _waiting(request, retry)
    # The PIN has done its work; a reload must not sign in a second time.
    await plugin.cache.delete(_pending_key(nonce))
    token = pin.auth_token
    try:
        account = await plex.account(token)
        access = await _server_access(plugin, plex, token)
    except Refused as exc:
        plugin.log.warning("plex.tv refused the new token: %s", exc)
        page = await sign_in_problem(request, TOKEN_REFUSED, status=403, retry=retry)
        return _forget_pending(page)
    except PlexError as exc:
        plugin.log.warning("cannot finish a Plex sign-in: %s", exc)
        server = isinstance(exc, Unreachable) and exc.service == "server"
        message = SERVER_DOWN if server else PLEX_TV_DOWN
        return _forget_pending(await sign_in_problem(request, message, status=503, retry=retry))
    username = str(account.get("username") or account.get("title") or account["id"])
    if access is None:
        name = await _server_name(plugin, plex)
        plugin.log.info("Plex account %s has no access to %s", username, name)
        return _forget_pending(
            await sign_in_problem(
                request, f"This Plex account has no access to {name}.", status=403
            )
        )
    identity = ExternalIdentity(
        provider="plex",
        subject=str(account["id"]),
        username=username,
        email=account.get("email") or None,
        owner=access == "owner",
        secret=token,
        details={
            "uuid": account.get("uuid"),
            "thumb": account.get("thumb"),
            "access": access,
        },
    )
    response = await sign_in(request, identity, next_url)
    if identity.owner:
        # The owner's token is the one MediaNest talks to the server with: what every
        # widget shows may change with it.
        await pollers.server_token_changed(plugin)
    return _forget_pending(response)


async def _waiting(request: web.Request, retry: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template("plex/waiting.html", request, {"retry": retry})
    response.headers["Cache-Control"] = "no-store"
    return response


async def _server_access(plugin: PluginContext, plex: PlexClient, token: str) -> str | None:
    """``"owner"`` or ``"shared"`` if the account reaches the configured server, else ``None``."""
    machine_id = await plugin.cache.get_or_compute(
        f"plex:machine-id:{plugin.settings.url}", IDENTITY_CACHE_SECONDS, plex.server_identity
    )
    for resource in await plex.resources(token):
        provides = str(resource.get("provides") or "").split(",")
        if resource.get("clientIdentifier") == machine_id and "server" in provides:
            return "owner" if resource.get("owned") is True else "shared"
    return None


async def _server_name(plugin: PluginContext, plex: PlexClient) -> str:
    """The server's own name for people who may not see it on plex.tv."""

    async def lookup() -> str | None:
        # Nothing found is not cached: a token the admin adds later is used at once.
        try:
            return await plex.server_name()
        except PlexError as exc:
            plugin.log.info("cannot read the Plex server's name: %s", exc)
            return None

    name: Any = await plugin.cache.get_or_compute(
        f"plex:server-name:{plugin.settings.url}", NAME_CACHE_SECONDS, lookup
    )
    return str(name) if name else "this Plex server"
