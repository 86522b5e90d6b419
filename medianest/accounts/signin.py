"""Signing in and out: the sign-in page, local accounts, first-run setup, and providers' sign-in.

Local sign-in needs nothing but the database, so an admin is never locked out by a plex.tv
outage. Providers (Plex first) finish their own flows by calling :func:`sign_in`.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from pydantic import Field

from ..core import audit
from ..core.api import ApiModel
from ..core.auth import (
    CurrentUser,
    ExternalIdentity,
    SignInRefused,
    admin_exists,
    check_local_password,
    create_local_user,
    user_for_identity,
)
from ..core.errors import ApiError
from ..core.extensions import Route
from ..core.keys import (
    BOX,
    ENGINE,
    LIMITS,
    PERMISSIONS_CHANGED,
    REGISTRY,
    SESSIONS,
    SETTINGS,
)
from ..core.middleware import (
    client_address,
    current_user,
    page_csrf_token,
    require_user,
    set_session_cookie,
)

log = logging.getLogger(__name__)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute URL that would send the user elsewhere."""
    if not target:
        return "/"
    # Browsers read a backslash as a slash and drop tabs and newlines: /\evil means //evil.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def _start_session(
    request: web.Request, user_id: Any, provider: str, response: web.StreamResponse
) -> None:
    raw = await request.app[SESSIONS].create(
        user_id,
        address=client_address(request),
        user_agent=request.headers.get("User-Agent"),
        provider=provider,
    )
    set_session_cookie(request, response, raw)


async def sign_in(
    request: web.Request, identity: ExternalIdentity, next_url: str | None = None
) -> web.StreamResponse:
    """Finish a provider's sign-in: find or create the user, start a new session, redirect.

    A refused identity (a disabled account) gets a page that says why.
    """
    engine = request.app[ENGINE]
    address = client_address(request)
    try:
        user_id, created = await user_for_identity(
            engine, request.app[BOX], identity, request.app[REGISTRY].default_permissions()
        )
    except SignInRefused as exc:
        await audit.record(
            engine,
            "sign_in.refused",
            actor=identity.username,
            address=address,
            details={"provider": identity.provider, "reason": str(exc)},
        )
        return await sign_in_problem(request, str(exc), status=403)
    # A plain response, not HTTPSeeOther: providers may add to it (cookies) and return it.
    response = web.Response(status=303, headers={"Location": safe_next(next_url)})
    await _start_session(request, user_id, identity.provider, response)
    await audit.record(
        engine,
        "sign_in",
        actor=identity.username,
        actor_id=user_id,
        address=address,
        details={"provider": identity.provider, "new_user": created},
    )
    return response


async def sign_in_problem(
    request: web.Request, message: str, *, status: int = 400, retry: str | None = None
) -> web.StreamResponse:
    """A page that explains why signing in did not work, with a way forward."""
    return aiohttp_jinja2.render_template(
        "signin_problem.html", request, {"message": message, "retry": retry}, status=status
    )


def _setup_allowed(request: web.Request) -> bool:
    # The client, not a trusted proxy on this machine that forwards everybody from loopback.
    address = client_address(request)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    networks = [ipaddress.ip_network(n, strict=False) for n in request.app[SETTINGS].setup_from]
    return any(ip in net for net in networks)


def _see_other(location: str) -> web.Response:
    # A response to return with cookies on it (returning an HTTPSeeOther is deprecated).
    return web.Response(status=303, headers={"Location": location})


# --- pages -----------------------------------------------------------------------------


async def login_page(
    request: web.Request,
    *,
    error: str | None = None,
    status: int = 200,
    next_url: str | None = None,
) -> web.StreamResponse:
    """The sign-in page: the local form and a button per sign-in provider."""
    next_url = safe_next(next_url or request.query.get("next"))
    if current_user(request) is not None and error is None:
        raise web.HTTPSeeOther(next_url)
    registry = request.app[REGISTRY]
    providers = [p for r in registry.active_records() for p in r.sign_in_providers]
    needs_setup = not await admin_exists(request.app[ENGINE])
    return aiohttp_jinja2.render_template(
        "login.html",
        request,
        {
            "providers": providers,
            "next": next_url,
            "error": error,
            "needs_setup": needs_setup and _setup_allowed(request),
        },
        status=status,
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    """The local sign-in form."""
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "")))
    try:
        user_id = await _check_password(request, username, password)
    except ApiError as err:
        # The page again, still taking the visitor where they were going once signed in.
        response = await login_page(
            request, error=err.message, status=err.status, next_url=next_url
        )
        response.headers.update(err.headers)
        return response
    response = _see_other(next_url)
    await _start_session(request, user_id, "local", response)
    return response


async def limit_sign_in(request: web.Request) -> None:
    """Count one sign-in attempt from this client; past the limit, a 429 with Retry-After.

    Providers call it when a sign-in starts, so nobody can make MediaNest hammer them.
    """
    limits = request.app[LIMITS]
    await limits.hit(limits.sign_in, "sign-in", client_address(request), what="sign-in attempts")


async def _check_password(request: web.Request, username: str, password: str) -> Any:
    await limit_sign_in(request)
    address = client_address(request)
    if not username or not password:
        raise ApiError(422, "Enter your username and password.")
    engine = request.app[ENGINE]
    user_id = await check_local_password(engine, username, password)
    if user_id is None:
        await audit.record(
            engine,
            "sign_in.failed",
            actor=username[:255],
            address=address,
            details={"provider": "local"},
        )
        raise ApiError(401, "That username and password do not match an enabled account.")
    await audit.record(
        engine,
        "sign_in",
        actor=username,
        actor_id=user_id,
        address=address,
        details={"provider": "local"},
    )
    return user_id


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out of this browser."""
    user = current_user(request)
    if user is not None:
        await _sign_out(request, user)
    response = _see_other("/login")
    response.del_cookie("medianest_session", path="/")
    return response


async def setup_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    """First run: create the first admin. Only while no admin exists, and only from here."""
    await _check_setup(request)
    # The ways of signing in the installed plugins offer, in their own words.
    providers = [
        {"label": provider.label, "plugin": record.name}
        for record in request.app[REGISTRY].records.values()
        for provider in record.sign_in_providers
    ]
    return aiohttp_jinja2.render_template(
        "setup.html", request, {"error": error, "providers": providers}, status=status
    )


async def _check_setup(request: web.Request) -> None:
    if await admin_exists(request.app[ENGINE]):
        raise ApiError(404, "MediaNest is already set up; sign in instead.")
    if not _setup_allowed(request):
        raise ApiError(
            403,
            "First-run setup is only open from the machine MediaNest runs on "
            "(or the addresses in MEDIANEST_SETUP_FROM), or use `medianest create-admin`.",
        )


async def setup_form(request: web.Request) -> web.StreamResponse:
    await _check_setup(request)
    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    if not 1 <= len(username) <= 64:
        return await setup_page(
            request, error="Choose a username of 1 to 64 characters.", status=422
        )
    if len(password) < 10:
        return await setup_page(
            request, error="Choose a password of at least 10 characters.", status=422
        )
    if password != form.get("password_again"):
        return await setup_page(request, error="The two passwords differ.", status=422)
    engine = request.app[ENGINE]
    user_id = await create_local_user(
        engine,
        username,
        password,
        role="admin",
        permissions=request.app[REGISTRY].default_permissions(),
    )
    for listener in request.app[PERMISSIONS_CHANGED]:
        await listener()
    await audit.record(
        engine,
        "user.create",
        actor=username,
        actor_id=user_id,
        target=username,
        address=client_address(request),
        details={"role": "admin", "via": "setup"},
    )
    response = _see_other("/admin/plugins")
    await _start_session(request, user_id, "local", response)
    return response


# --- JSON API ----------------------------------------------------------------------------


class LoginIn(ApiModel):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class Me(ApiModel):
    id: str
    username: str
    role: str
    permissions: list[str]
    csrf_token: str | None = Field(
        default=None, description="Send as X-CSRF-Token with state changes made by cookie."
    )


def _me(request: web.Request, user: CurrentUser, csrf: str | None) -> Me:
    # What may be granted now (an uninstalled plugin's permission is not).
    known = {p.name for p in request.app[REGISTRY].permissions()}
    perms = sorted(known if user.is_admin else user.permissions & known)
    return Me(
        id=str(user.id), username=user.username, role=user.role, permissions=perms, csrf_token=csrf
    )


async def api_login(request: web.Request, body: LoginIn) -> web.StreamResponse:
    """Sign in with a local account; the answer sets the session cookie."""
    user_id = await _check_password(request, body.username, body.password)
    response = web.json_response({"ok": True})
    await _start_session(request, user_id, "local", response)
    return response


async def api_logout(request: web.Request) -> dict[str, bool]:
    """End this session."""
    await _sign_out(request, require_user(request))
    return {"ok": True}


async def _sign_out(request: web.Request, user: CurrentUser) -> None:
    """End ``user``'s session (a token is not a session: nothing ends) and record it."""
    if user.session_id is None:
        return
    await request.app[SESSIONS].revoke(user.session_id)
    await audit.record(
        request.app[ENGINE],
        "sign_out",
        actor=user.username,
        actor_id=user.id,
        address=client_address(request),
    )


async def api_me(request: web.Request) -> Me:
    """Who you are, what you may do, and the CSRF token of your session."""
    user = require_user(request)
    return _me(request, user, page_csrf_token(request) if user.via_cookie else None)


AUTH_ROUTES = [
    Route("GET", "/login", login_page, access="public", include_in_schema=False),
    Route("POST", "/login", login_form, access="public", include_in_schema=False),
    Route("POST", "/logout", logout, include_in_schema=False),
    Route("GET", "/setup", setup_page, access="public", include_in_schema=False),
    Route("POST", "/setup", setup_form, access="public", include_in_schema=False),
    Route("POST", "/api/v1/auth/login", api_login, body=LoginIn, access="public"),
    Route("POST", "/api/v1/auth/logout", api_logout),
    Route("GET", "/api/v1/auth/me", api_me, response=Me),
]
