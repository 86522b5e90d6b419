"""Who is asking, and whether they may: the auth middleware, route guards and CSRF checks.

Every route declares its ``access`` (``"public"``, ``"user"`` or a permission); the default is
``"user"``, so a route someone forgets to declare is closed, not open.
"""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from .auth import SESSION_COOKIE, CurrentUser
from .errors import ApiError, error_response
from .extensions import Route
from .keys import (
    BOX,
    CLIENT_ADDRESS,
    HTTPS,
    LIMITS,
    PROXIES,
    REGISTRY,
    SESSIONS,
    SETTINGS,
    TOKENS,
    USER,
)
from .logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_for
from .metrics import observe_request
from .security import ANON_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_token, csrf_valid, security_headers

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _api_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-Api-Key") or None


_TOKEN_VALUE = re.compile(r"[A-Za-z0-9_-]+")


def _session_cookie(request: web.Request) -> str | None:
    """The session cookie's value. A session token is plain URL-safe characters: found once
    in a plain ``Cookie`` header, it is read there; anything else (quoted, repeated, oddly
    spaced) goes to aiohttp's full cookie parser, which costs more than the rest of the
    sign-in check."""
    header = request.headers.get("Cookie")
    if header is None or SESSION_COOKIE not in header:
        return None
    if header.count(SESSION_COOKIE) == 1:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and _TOKEN_VALUE.fullmatch(value):
                return value
    return request.cookies.get(SESSION_COOKIE)


@web.middleware
async def core_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What every request goes through, in one pass (each middleware of its own would cost a
    call layer per request): the request id, the HTTP metrics, errors made into answers, who
    is asking (API token or session cookie) and their count of API calls, and the cookies the
    answer sets or drops."""
    request_id = request_id_for(request)
    context = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await _authenticated(request, handler)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect: aiohttp sends it
                status = exc.status
                exc.headers[REQUEST_ID_HEADER] = request_id
                raise
            response = await error_response(request, exc)
        except Exception as exc:
            response = await error_response(request, exc)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        observe_request(request, status, time.perf_counter() - started)
        REQUEST_ID.reset(context)


async def _authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the user from an API token or the session cookie; count their API calls."""
    app = request.app
    proxies = app[PROXIES]
    request[CLIENT_ADDRESS] = proxies.client_address(request)
    request[HTTPS] = proxies.is_https(request)
    stale_cookie = False
    user: CurrentUser | None = None
    # /metrics takes Prometheus's own bearer token, which is not a user's API token.
    token = _api_token(request) if request.path != "/metrics" else None
    if token is not None:
        user = await app[TOKENS].resolve(token)
        if user is None:
            raise ApiError(401, "The API token is not valid; it may have been revoked.")
    elif raw := _session_cookie(request):
        user = await app[SESSIONS].resolve(raw)
        stale_cookie = user is None
    if user is not None:
        request[USER] = user
        if request.path.startswith("/api/"):
            limits = app[LIMITS]
            await limits.hit(limits.api, "api", str(user.id), what="API calls")
    response = await handler(request)
    if not response.prepared:
        # The anonymous visitor's CSRF cookie, when the page made one (see page_csrf_token).
        anon = request.get(_NEW_ANON)
        if anon is not None:
            response.set_cookie(
                ANON_COOKIE,
                anon,
                httponly=True,
                samesite="Lax",
                path="/",
                secure=request.get(HTTPS, False),
            )
        # A stale cookie is dropped, unless this very response signed in and set a new one.
        if stale_cookie and SESSION_COOKIE not in response.cookies:
            response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    security_headers(response, https=request.get(HTTPS, False))


_NEW_ANON = web.RequestKey("new_anon_cookie", str)


def current_user(request: web.Request) -> CurrentUser | None:
    return request.get(USER)


def require_user(request: web.Request) -> CurrentUser:
    user = request.get(USER)
    if user is None:
        raise ApiError(401, "Sign in first (or send an API token).")
    return user


async def guard(request: web.Request, route: Route) -> None:
    """Enforce ``route.access`` and, for state changes made with a cookie, the CSRF token."""
    user = request.get(USER)
    if route.access != "public":
        if user is None:
            if request.method in SAFE_METHODS and _is_page(request):
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/?=&')}")
            raise ApiError(401, "Sign in first (or send an API token).")
        if route.access != "user" and not user.has(route.access):
            # The core's or a plugin's; one nobody declares is closed all the same.
            label = request.app[REGISTRY].permission_label(route.access)
            raise ApiError(403, f"This needs the permission “{label}”, which you do not have.")
    if route.csrf and request.method not in SAFE_METHODS:
        await check_csrf(request, user)


def _is_page(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and request.path != "/ws"


def csrf_binding(request: web.Request) -> str | None:
    user = request.get(USER)
    if user is not None and user.session_id is not None:
        return str(user.session_id)
    anon = request.cookies.get(ANON_COOKIE)
    return f"anon:{anon}" if anon else None


def page_csrf_token(request: web.Request) -> str:
    """The token forms and scripts of this page send back; sets the anonymous cookie if needed."""
    binding = csrf_binding(request)
    if binding is None:
        # The handler's response carries this cookie (see core_middleware).
        anon = request.get(_NEW_ANON)
        if anon is None:
            anon = secrets.token_urlsafe(24)
            request[_NEW_ANON] = anon
        binding = f"anon:{anon}"
    return csrf_token(request.app[BOX], binding)


async def check_csrf(request: web.Request, user: CurrentUser | None) -> None:
    if user is not None and not user.via_cookie:
        return  # API tokens are not sent by browsers on their own: nothing to forge.
    if user is None and request.content_type == "application/json":
        return  # a cross-site page cannot send JSON without the browser asking us first
    binding = csrf_binding(request)
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        value = (await request.post()).get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if binding is None or not csrf_valid(request.app[BOX], binding, token):
        raise ApiError(
            403,
            "This form has expired or did not come from MediaNest; reload the page and try again.",
            code="csrf_failed",
        )


def set_session_cookie(request: web.Request, response: web.StreamResponse, raw: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        httponly=True,
        samesite="Lax",
        path="/",
        secure=request.get(HTTPS, False),
        max_age=int(settings.session_max_days * 86400),
    )
    response.del_cookie(ANON_COOKIE, path="/")


def client_address(request: web.Request) -> str:
    return request.get(CLIENT_ADDRESS) or request.remote or ""


def site_url(request: web.Request, path: str = "") -> str:
    """The absolute address of ``path`` on this site, as the browser reached it (``https``
    when the request came over TLS or through a trusted proxy that says so)."""
    scheme = "https" if request.get(HTTPS, False) else "http"
    return f"{scheme}://{request.host}{path}"
