"""The security defaults of the core, against a real app over loopback.

Every route declares who may call it and only the sign-in pages are open; state changes made
with a cookie need the CSRF token; sign-in attempts and API calls are rate limited; every
response carries the security headers; pages run no inline script; first-run setup is open
only while no admin exists and only from where it is allowed; local sign-in needs nothing of
plex.tv; passwords are stored as Argon2id hashes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from conftest import ADMIN, Client, MakeClient, add_user
from plugins_for_tests import ProbePlugin
from sqlalchemy import func, select

from medianest import Route, hookimpl
from medianest.core.auth import SESSION_COOKIE
from medianest.core.keys import ENGINE, REGISTRY, TOKENS
from medianest.core.models import AuditLog, User
from medianest.core.settings import Settings, load_settings
from medianest.testing import FakePlexTV

# The routes anybody may call: signing in, first-run setup, the liveness and readiness probes,
# and the metrics, which check a token or the caller's address themselves.
CORE_PUBLIC = {
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("GET", "/healthz"),
    ("POST", "/api/v1/auth/login"),
}
# A sign-in provider's own steps (the browser arrives there before anybody is signed in).
PROVIDER_PREFIX = "/auth/plex/"
# Receivers that check a secret of their own (Sonarr's and Radarr's webhooks).
RECEIVER_PREFIX = "/arr/webhook/"
USER = ("viewer", "a viewer's password")
_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


@pytest.fixture
async def new_browser() -> AsyncIterator[Callable[[Client], Client]]:
    """Another browser on an already running app: same server, cookies of its own."""
    made: list[Client] = []

    def make(client: Client) -> Client:
        other = Client(client.server)
        made.append(other)
        return other

    yield make
    for other in made:
        await other.session.close()


def settings_with(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=tmp_path / "data", **overrides)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def cookies_set(response: ClientResponse) -> dict[str, Any]:
    """The cookies a response sets, with their attributes, as a browser reads them."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


async def plugin_enabled(client: Client, name: str) -> bool:
    return bool(client.app[REGISTRY].records[name].enabled)


# --- every route guarded ---------------------------------------------------------------------


class LeakyPlugin:
    """A plugin that opens a route to everybody (and one with a misspelt permission)."""

    @hookimpl
    def register_routes(self) -> list[Route]:
        async def leak() -> dict[str, str]:
            return {"leak": "yes"}

        return [
            Route("GET", "/api/v1/leaky/open", leak, access="public"),
            Route("GET", "/api/v1/leaky/typo", leak, access="manage_setting"),
        ]


def routes_of(app: web.Application) -> list[tuple[str, str, str | None]]:
    """(method, path, declared access) of every route of the router; static files have None."""
    found = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # the GET route's own handler: test_head_answers_as_get_does covers it
        access = getattr(route.handler, "medianest_access", None)
        if access is None:
            assert isinstance(route.resource, web.StaticResource), (
                f"{route.method} {route.resource.canonical if route.resource else '?'} "
                "was not made by MediaNest's route layer: nothing checks who calls it"
            )
        assert route.resource is not None
        found.append((route.method, route.resource.canonical, access))
    return found


def unexpected_public(app: web.Application) -> set[tuple[str, str]]:
    """Public routes that are neither the core's sign-in routes nor a sign-in provider's."""
    registry = app[REGISTRY]
    provider_routes = {
        (r.method, r.path)
        for r in registry.records["plex"].routes
        if r.access == "public" and r.path.startswith(PROVIDER_PREFIX)
    }
    public = {(m, p) for m, p, access in routes_of(app) if access == "public"}
    return public - CORE_PUBLIC - provider_routes - receivers(app)


def receivers(app: web.Application) -> set[tuple[str, str]]:
    """The arr plugin's webhook receivers, as the router knows them."""
    return {
        (m, p)
        for m, p, access in routes_of(app)
        if access == "public" and m == "POST" and p.startswith(RECEIVER_PREFIX)
    }


def concrete(path: str, admin_id: str) -> str:
    values = {"name": "probe", "widget": "status", "id": admin_id}
    return _PARAM.sub(lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


async def admin_id(client: Client) -> str:
    return str((await (await client.get("/api/v1/auth/me")).json())["id"])


async def test_every_route_declares_access_and_only_sign_in_is_public(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    routes = routes_of(client.app)
    # MediaNest's own permissions and those the installed plugins declare.
    valid = {"public", "user", *(p.name for p in client.app[REGISTRY].permissions())}
    assert {access for _, _, access in routes if access is not None} <= valid
    assert unexpected_public(client.app) == set()
    # The allowlist is all there: sign-in and setup are reachable before anybody signs in.
    public = {(m, p) for m, p, access in routes if access == "public"}
    assert public >= CORE_PUBLIC
    # ... and so are the steps of Plex sign-in and the webhook receiver, and nothing else.
    assert len(receivers(client.app)) == 1
    provider_steps = public - CORE_PUBLIC - receivers(client.app)
    assert provider_steps
    assert all(path.startswith(PROVIDER_PREFIX) for _, path in provider_steps)
    # A plugin route that does not say who may call it is for signed-in users only.
    assert ("GET", "/api/v1/probe/hello", "user") in routes
    # Static files are the only routes without a declaration.
    assert {p for _, p, access in routes if access is None} == {"/static"}


async def test_the_route_check_catches_a_plugin_that_opens_a_route(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings, [("leaky", LeakyPlugin())])
    assert unexpected_public(client.app) == {("GET", "/api/v1/leaky/open")}
    assert (await client.post("/api/v1/plugins/leaky/enable")).status == 200
    # A misspelt permission keeps the route closed to users who are not admins (not a 500).
    await add_user(client.app, *USER)
    viewer = new_browser(client)
    await viewer.sign_in(*USER)
    resp = await viewer.get("/api/v1/leaky/typo")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"


async def test_anonymous_visitors_are_refused_everywhere_but_the_allowlist(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    admin = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    for name in ("probe", "example"):
        if name in admin.app[REGISTRY].records:
            assert (await admin.post(f"/api/v1/plugins/{name}/enable")).status == 200
    some_id = await admin_id(admin)
    anonymous = new_browser(admin)
    checked = 0
    for method, path, access in routes_of(admin.app):
        if access in (None, "public"):
            continue
        url = concrete(path, some_id)
        resp = await anonymous.request(method, url, json={}, allow_redirects=False)
        what = f"{method} {url}"
        if method == "GET" and not path.startswith("/api/") and path != "/ws":
            assert resp.status == 303, what
            assert resp.headers["Location"].startswith("/login?next="), what
            assert resp.headers["Location"] == f"/login?next={url}", what
        else:
            assert resp.status == 401, what
            if path.startswith("/api/"):
                assert (await resp.json())["error"]["code"] == "unauthorised", what
        checked += 1
    assert checked > 30
    # And the open ones do answer (setup is over once an admin exists).
    assert (await anonymous.get("/login")).status == 200
    assert (await anonymous.get("/healthz")).status == 200
    assert (await anonymous.get("/static/medianest.css")).status == 200
    assert (await anonymous.get("/setup")).status == 404


async def test_users_without_a_permission_are_refused_its_routes(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    admin = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    some_id = await admin_id(admin)
    await add_user(admin.app, *USER)
    viewer = new_browser(admin)
    await viewer.sign_in(*USER)
    refused = []
    registry = admin.app[REGISTRY]
    for method, path, access in routes_of(admin.app):
        if access not in {p.name for p in registry.permissions()}:
            continue
        if access in registry.default_permissions():
            continue  # a new user's default permissions
        url = concrete(path, some_id)
        resp = await viewer.request(method, url, json={}, allow_redirects=False)
        assert resp.status == 403, f"{method} {url} answered {resp.status}"
        if path.startswith("/api/"):
            assert (await resp.json())["error"]["code"] == "forbidden"
        refused.append(path)
    assert "/admin/plugins" in refused and "/api/v1/plugins/{name}/enable" in refused
    # Nothing was changed on the way.
    assert not await plugin_enabled(admin, "probe")
    # The same user may use what any signed-in user may.
    assert (await viewer.get("/api/v1/dashboard")).status == 200


# --- CSRF ------------------------------------------------------------------------------------


async def test_cookie_state_changes_need_the_csrf_token(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    token = client.csrf
    assert token
    # Without the token (as a forged cross-site request would come), nothing changes.
    client.csrf = None
    for method, path, kwargs in [
        ("POST", "/api/v1/plugins/probe/enable", {}),
        ("PUT", "/api/v1/plugins/probe/settings", {"json": {"url": "http://evil"}}),
        ("POST", "/api/v1/plugins/probe/enable", {"headers": {"X-CSRF-Token": "forged"}}),
        ("POST", "/admin/plugins/probe/toggle", {"data": {"enabled": "1"}}),
        ("POST", "/admin/plugins/probe/toggle", {"data": {"enabled": "1", "csrf_token": "x"}}),
    ]:
        resp = await client.request(method, path, allow_redirects=False, **kwargs)
        assert resp.status == 403, f"{method} {path} {kwargs}"
        if path.startswith("/api/"):
            error = (await resp.json())["error"]
            assert error["code"] == "csrf_failed"
            assert "reload the page" in error["message"]
    assert not await plugin_enabled(client, "probe")
    assert client.app[REGISTRY].records["probe"].raw_settings == {}

    # With the header, as MediaNest's scripts send it.
    resp = await client.post("/api/v1/plugins/probe/enable", headers={"X-CSRF-Token": token})
    assert resp.status == 200
    assert await plugin_enabled(client, "probe")
    # With the hidden field of the page's form.
    page = await (await client.get("/admin/plugins")).text()
    resp = await client.post(
        "/admin/plugins/probe/toggle",
        data={"enabled": "0", "csrf_token": csrf_of(page)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert not await plugin_enabled(client, "probe")


async def test_a_token_of_another_session_is_refused(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    other = new_browser(client)
    await other.sign_in(*ADMIN)
    assert other.csrf != client.csrf
    resp = await client.post(
        "/api/v1/plugins/probe/enable", headers={"X-CSRF-Token": str(other.csrf)}
    )
    assert resp.status == 403
    assert not await plugin_enabled(client, "probe")


async def test_the_login_form_needs_its_token(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings)
    visitor = new_browser(client)
    credentials = {"username": ADMIN[0], "password": ADMIN[1]}
    # A cross-site page posting the form (login CSRF) gets nowhere.
    resp = await visitor.post("/login", data=credentials, allow_redirects=False)
    assert resp.status == 403
    assert SESSION_COOKIE not in cookies_set(resp)
    # ... nor does a token that belongs to another visitor.
    someone = new_browser(client)
    other_token = csrf_of(await (await someone.get("/login")).text())
    page = await (await visitor.get("/login")).text()
    resp = await visitor.post(
        "/login", data={**credentials, "csrf_token": other_token}, allow_redirects=False
    )
    assert resp.status == 403
    # A text/plain body shaped like JSON (what a cross-site form can send) is refused too.
    resp = await visitor.post(
        "/api/v1/auth/login",
        data='{"username": "admin", "password": "correct horse battery"}',
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status == 403
    assert SESSION_COOKIE not in cookies_set(resp)

    resp = await visitor.post(
        "/login", data={**credentials, "csrf_token": csrf_of(page)}, allow_redirects=False
    )
    assert resp.status == 303
    assert SESSION_COOKIE in cookies_set(resp)
    assert (await visitor.get("/api/v1/auth/me")).status == 200


async def test_token_authenticated_calls_need_no_csrf_token(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    async with client.app[ENGINE].connect() as conn:
        admin_user = (await conn.execute(select(User.id).where(User.username == ADMIN[0]))).scalar()
    assert admin_user is not None
    _, token = await client.app[TOKENS].create(admin_user, "script")
    script = new_browser(client)
    resp = await script.post(
        "/api/v1/plugins/probe/enable", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200, await resp.text()
    assert await plugin_enabled(client, "probe")
    resp = await script.put(
        "/api/v1/plugins/probe/settings", json={"url": "http://svc"}, headers={"X-Api-Key": token}
    )
    assert resp.status == 200
    # No cookie came with it: a token does not sign a browser in.
    assert SESSION_COOKIE not in cookies_set(resp)
    resp = await script.post(
        "/api/v1/plugins/probe/disable", headers={"Authorization": "Bearer mn_not-a-token"}
    )
    assert resp.status == 401
    assert await plugin_enabled(client, "probe")


# --- redirects after sign-in ------------------------------------------------------------------

OFF_SITE = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "/\\/evil.example/",
    "/\t/evil.example/",
    "javascript:alert(1)",
    "evil.example",
]


async def test_sign_in_only_ever_sends_the_browser_to_a_page_of_this_site(
    tmp_path: Path, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(settings_with(tmp_path, rate_limit_sign_in="100/minute"))
    # Browsers read a backslash as a slash and drop tabs: "/\\evil" is "//evil", off site.
    for target in OFF_SITE:
        visitor = new_browser(client)
        page = await (await visitor.get("/login", params={"next": target})).text()
        resp = await visitor.post(
            "/login",
            data={
                "username": ADMIN[0],
                "password": ADMIN[1],
                "next": target,
                "csrf_token": csrf_of(page),
            },
            allow_redirects=False,
        )
        assert (resp.status, resp.headers["Location"]) == (303, "/"), repr(target)
        # Signed in already, the sign-in page sends the browser on at once: on site too.
        resp = await visitor.get("/login", params={"next": target}, allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/"), repr(target)
    # A page of this site, with its query, is where the visitor goes back to.
    resp = await client.get(
        "/login", params={"next": "/admin/plugins?tab=plex"}, allow_redirects=False
    )
    assert resp.headers["Location"] == "/admin/plugins?tab=plex"


# --- rate limits -----------------------------------------------------------------------------


def assert_rate_limited(resp: ClientResponse) -> int:
    assert resp.status == 429
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 60
    return retry


async def test_the_eleventh_sign_in_attempt_in_a_minute_is_refused(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings, sign_in=False)
    await add_user(client.app, *ADMIN, role="admin")
    attacker = new_browser(client)
    page = await (await attacker.get("/login")).text()
    token = csrf_of(page)
    for i in range(10):
        if i % 2:
            resp = await attacker.post(
                "/api/v1/auth/login", json={"username": ADMIN[0], "password": f"guess {i}"}
            )
        else:
            resp = await attacker.post(
                "/login",
                data={"username": ADMIN[0], "password": f"guess {i}", "csrf_token": token},
            )
        assert resp.status == 401, i
    # Even the right password is refused now, on the form and on the API.
    resp = await attacker.post(
        "/login",
        data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token},
        allow_redirects=False,
    )
    assert_rate_limited(resp)
    assert "Too many sign-in attempts" in await resp.text()
    assert SESSION_COOKIE not in cookies_set(resp)
    resp = await attacker.post(
        "/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
    )
    assert_rate_limited(resp)
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert SESSION_COOKIE not in cookies_set(resp)
    # Failed attempts are in the audit log with where they came from.
    async with client.app[ENGINE].connect() as conn:
        failed = (
            await conn.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "sign_in.failed", AuditLog.address == "127.0.0.1")
            )
        ).scalar()
    assert failed == 10


async def test_the_sign_in_limit_is_per_client_address(
    tmp_path: Path, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    # Behind a trusted proxy each client has its own allowance.
    proxied = settings_with(tmp_path, rate_limit_sign_in="2/minute", trusted_proxies=["127.0.0.1"])
    client = await make_client(proxied)
    browser = new_browser(client)
    wrong = {"username": ADMIN[0], "password": "nope"}
    right = {"username": ADMIN[0], "password": ADMIN[1]}
    one, two = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    for _ in range(2):
        assert (await browser.post("/api/v1/auth/login", json=wrong, headers=one)).status == 401
    assert_rate_limited(await browser.post("/api/v1/auth/login", json=right, headers=one))
    assert (await browser.post("/api/v1/auth/login", json=right, headers=two)).status == 200

    # Without a trusted proxy the header is the client's own word: it changes nothing.
    direct = await make_client(
        settings_with(tmp_path / "direct", rate_limit_sign_in="2/minute"), sign_in=False
    )
    await add_user(direct.app, *ADMIN, role="admin")
    for n in range(2):
        spoofed = {"X-Forwarded-For": f"198.51.100.{n}"}
        resp = await direct.post("/api/v1/auth/login", json=wrong, headers=spoofed)
        assert resp.status == 401
    resp = await direct.post(
        "/api/v1/auth/login", json=right, headers={"X-Forwarded-For": "198.51.100.9"}
    )
    assert_rate_limited(resp)


async def test_api_calls_per_user_are_limited(
    tmp_path: Path, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(settings_with(tmp_path, rate_limit_api="5/minute"), sign_in=False)
    await add_user(client.app, *ADMIN, role="admin")
    await add_user(client.app, *USER)
    login = await client.post(
        "/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
    )
    assert login.status == 200
    for _ in range(5):
        assert (await client.get("/api/v1/dashboard")).status == 200
    resp = await client.get("/api/v1/dashboard")
    assert_rate_limited(resp)
    assert (await resp.json())["error"]["code"] == "rate_limited"
    # Pages are not API calls; another user has an allowance of their own.
    assert (await client.get("/")).status == 200
    other = new_browser(client)
    assert (
        await other.post("/api/v1/auth/login", json={"username": USER[0], "password": USER[1]})
    ).status == 200
    assert (await other.get("/api/v1/dashboard")).status == 200


@pytest.mark.redis
async def test_with_redis_the_limits_are_shared_by_every_process(
    tmp_path: Path,
    redis_url: str,
    make_client: MakeClient,
    new_browser: Callable[[Client], Client],
) -> None:
    def settings(name: str) -> Settings:
        return load_settings(
            data_dir=tmp_path / name,
            database_url=f"sqlite:///{tmp_path / 'shared.db'}",
            redis_url=redis_url,
            secret_key="one key for both processes, long enough",
            rate_limit_api="5/minute",
            rate_limit_sign_in="3/minute",
        )

    a = await make_client(settings("a"))  # its sign-in asks /api/v1/auth/me: call 1
    b = await make_client(settings("b"))  # call 2, same user
    assert (await a.get("/api/v1/dashboard")).status == 200  # 3
    assert (await b.get("/api/v1/dashboard")).status == 200  # 4
    assert (await a.get("/api/v1/dashboard")).status == 200  # 5
    assert_rate_limited(await b.get("/api/v1/dashboard"))
    assert_rate_limited(await a.get("/api/v1/dashboard"))

    # Two sign-ins so far (one on each process); the third attempt is the last allowed.
    wrong = {"username": ADMIN[0], "password": "nope"}
    right = {"username": ADMIN[0], "password": ADMIN[1]}
    assert (await new_browser(a).post("/api/v1/auth/login", json=wrong)).status == 401
    assert_rate_limited(await new_browser(b).post("/api/v1/auth/login", json=right))


# --- headers ---------------------------------------------------------------------------------


def assert_security_headers(resp: ClientResponse, what: str) -> None:
    headers = resp.headers
    policy = {
        d.strip().split()[0]: d.strip().split()[1:]
        for d in headers.get("Content-Security-Policy", "").split(";")
        if d.strip()
    }
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts is not None, what
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, what
    assert policy.get("frame-ancestors") == ["'none'"], what
    assert policy.get("object-src") == ["'none'"], what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") in (
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    ), what


async def test_every_response_carries_the_security_headers(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    await client.post("/api/v1/plugins/probe/enable")
    anonymous = new_browser(client)
    checks: list[tuple[Client, str, str]] = [
        (client, "GET", "/"),
        (client, "GET", "/admin/plugins"),
        (client, "GET", "/api/v1/auth/me"),
        (client, "GET", "/api/openapi.json"),
        (client, "GET", "/static/medianest.css"),
        (client, "GET", "/static/medianest.js"),
        (client, "GET", "/no/such/page"),
        (client, "GET", "/api/v1/no/such/thing"),
        (client, "DELETE", "/healthz"),
        (client, "GET", "/api/v1/probe/boom"),
        (client, "POST", "/api/v1/probe/echo"),
        (anonymous, "GET", "/login"),
        (anonymous, "GET", "/healthz"),
        (anonymous, "GET", "/admin/plugins"),
        (anonymous, "GET", "/api/v1/plugins"),
        (anonymous, "GET", "/setup"),
        (anonymous, "GET", "/static/favicon.svg"),
    ]
    statuses = set()
    for who, method, path in checks:
        resp = await who.request(method, path, allow_redirects=False)
        statuses.add(resp.status)
        assert_security_headers(resp, f"{method} {path} ({resp.status})")
        # Plain HTTP without a trusted proxy: no HSTS (it would pin a site that has no TLS).
        assert "Strict-Transport-Security" not in resp.headers
    assert {200, 303, 401, 404, 405, 415, 500} <= statuses


async def test_behind_a_trusted_https_proxy_hsts_and_secure_cookies(
    tmp_path: Path, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    login = {"username": ADMIN[0], "password": ADMIN[1]}

    proxied = await make_client(settings_with(tmp_path / "p", trusted_proxies=["127.0.0.1"]))
    browser = new_browser(proxied)
    resp = await browser.get("/login", headers=https)
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(resp.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 15552000
    resp = await browser.post("/api/v1/auth/login", json=login, headers=https)
    assert resp.status == 200
    assert "Strict-Transport-Security" in resp.headers
    cookie = cookies_set(resp)[SESSION_COOKIE]
    assert cookie["secure"] and cookie["httponly"]
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"

    # Without trusted proxies anybody could send the header: it is ignored.
    direct = await make_client(settings_with(tmp_path / "d"))
    browser = new_browser(direct)
    resp = await browser.get("/login", headers=https)
    assert "Strict-Transport-Security" not in resp.headers
    resp = await browser.post("/api/v1/auth/login", json=login, headers=https)
    assert resp.status == 200
    assert "Strict-Transport-Security" not in resp.headers
    cookie = cookies_set(resp)[SESSION_COOKIE]
    assert not cookie["secure"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax"


async def test_cookies_of_anonymous_visitors_are_httponly_and_lax(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, sign_in=False)
    resp = await client.get("/login")
    assert resp.status == 200
    set_cookies = cookies_set(resp)
    assert set_cookies, "the sign-in form binds its CSRF token to a cookie"
    for name, cookie in set_cookies.items():
        assert cookie["httponly"], name
        assert cookie["samesite"].lower() == "lax", name


# --- no inline scripts -----------------------------------------------------------------------


class _ScriptFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.external: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> (an inline event handler)")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            if not values.get("src"):
                self.problems.append("<script> without src (an inline script)")
            else:
                self.external.append(str(values["src"]))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"script body: {data.strip()[:60]!r}")


def inline_script_problems(html: str) -> tuple[list[str], list[str]]:
    finder = _ScriptFinder()
    finder.feed(html)
    return finder.problems, finder.external


async def test_no_page_runs_an_inline_script(
    tmp_path: Path, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    # First run: the setup and sign-in pages, before any admin exists.
    fresh = await make_client(settings_with(tmp_path / "fresh"), sign_in=False)
    pages: dict[str, str] = {}
    for path in ("/setup", "/login", "/login?next=/admin/plugins"):
        resp = await fresh.get(path)
        assert resp.status == 200
        pages[path] = await resp.text()

    client = await make_client(settings_with(tmp_path / "main"), [("probe", ProbePlugin())])
    await client.post("/api/v1/plugins/probe/enable")
    some_id = await admin_id(client)
    # Every page the admin can open: each GET route outside the API without a parameter,
    # and those with one filled in.
    for method, path, access in routes_of(client.app):
        if method != "GET" or access is None or path.startswith("/api/") or path == "/ws":
            continue
        if path in ("/login", "/setup", "/healthz", "/readyz", "/metrics"):
            continue
        url = concrete(path, some_id)
        resp = await client.get(url)
        if resp.content_type == "text/html":
            pages[url] = await resp.text()
    # Error pages, and the sign-in page telling a visitor what went wrong.
    pages["404"] = await (await client.get("/no/such/page")).text()
    visitor = new_browser(client)
    token = csrf_of(await (await visitor.get("/login")).text())
    resp = await visitor.post(
        "/login", data={"username": "x", "password": "y", "csrf_token": token}
    )
    assert resp.status == 401
    pages["login error"] = await resp.text()

    assert {"/", "/admin/plugins", "/setup", "/login", "404"} <= set(pages)
    for name, html in pages.items():
        problems, external = inline_script_problems(html)
        assert problems == [], name
        assert all(src.startswith("/static/") for src in external), (name, external)


# --- first-run setup -------------------------------------------------------------------------


async def admins(client: Client) -> list[tuple[str, str | None]]:
    async with client.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            select(User.username, User.password_hash).where(User.role == "admin")
        )
        return [(r[0], r[1]) for r in rows]


async def test_setup_creates_the_first_admin_once(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings, sign_in=False)
    login = await (await client.get("/login")).text()
    assert 'href="/setup"' in login  # the way in on a new installation
    page = await (await client.get("/setup")).text()
    token = csrf_of(page)

    form = {"username": "owner", "csrf_token": token}
    resp = await client.post(
        "/setup", data={**form, "password": "short", "password_again": "short"}
    )
    assert resp.status == 422
    assert "Choose a password of at least 10 characters." in await resp.text()
    resp = await client.post(
        "/setup",
        data={**form, "password": "long enough 1", "password_again": "long enough 2"},
    )
    assert resp.status == 422
    assert "The two passwords differ." in await resp.text()
    resp = await client.post(
        "/setup", data={"username": "owner", "password": "p" * 12, "password_again": "p" * 12}
    )
    assert resp.status == 403  # no CSRF token
    assert await admins(client) == []

    resp = await client.post(
        "/setup",
        data={**form, "password": "the owner's secret", "password_again": "the owner's secret"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/admin/plugins"
    assert SESSION_COOKIE in cookies_set(resp)
    me = await (await client.get("/api/v1/auth/me")).json()
    assert (me["username"], me["role"]) == ("owner", "admin")
    [(name, password_hash)] = await admins(client)
    assert name == "owner" and password_hash is not None
    assert password_hash.startswith("$argon2id$")

    # Once there is an admin, setup is gone for everybody.
    latecomer = new_browser(client)
    assert (await latecomer.get("/setup")).status == 404
    other_token = csrf_of(await (await latecomer.get("/login")).text())
    resp = await latecomer.post(
        "/setup",
        data={
            "username": "intruder",
            "password": "p" * 12,
            "password_again": "p" * 12,
            "csrf_token": other_token,
        },
    )
    assert resp.status == 404
    assert 'href="/setup"' not in await (await latecomer.get("/login")).text()
    assert [n for n, _ in await admins(client)] == ["owner"]


async def test_setup_is_refused_from_elsewhere(tmp_path: Path, make_client: MakeClient) -> None:
    elsewhere = settings_with(tmp_path, setup_from=["10.9.9.9/32"])
    client = await make_client(elsewhere, sign_in=False)
    resp = await client.get("/setup")
    assert resp.status == 403
    assert "medianest create-admin" in await resp.text()
    token = csrf_of(await (await client.get("/login")).text())
    resp = await client.post(
        "/setup",
        data={
            "username": "intruder",
            "password": "p" * 12,
            "password_again": "p" * 12,
            "csrf_token": token,
        },
    )
    assert resp.status == 403
    assert await admins(client) == []
    assert 'href="/setup"' not in await (await client.get("/login")).text()


async def test_setup_behind_a_proxy_is_judged_by_the_real_client(
    tmp_path: Path, make_client: MakeClient
) -> None:
    # The proxy runs on this machine, so every request arrives from loopback; the visitor
    # it forwards is somewhere else and must not get to create the first admin.
    proxied = settings_with(tmp_path, trusted_proxies=["127.0.0.1"])
    client = await make_client(proxied, sign_in=False)
    outside = {"X-Forwarded-For": "203.0.113.50"}
    assert (await client.get("/setup", headers=outside)).status == 403
    assert 'href="/setup"' not in await (await client.get("/login", headers=outside)).text()
    # The operator on the machine itself still can.
    assert (await client.get("/setup")).status == 200


# --- local sign-in needs nothing of plex.tv --------------------------------------------------


async def test_local_sign_in_works_while_plex_tv_is_down(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    plex_tv = FakePlexTV()
    await plex_tv.start()
    admin = await make_client(sqlite_settings)
    resp = await admin.put(
        "/api/v1/plugins/plex/settings",
        json={"plex_tv_url": plex_tv.url, "plex_app_url": plex_tv.url + "/auth"},
    )
    assert resp.status == 200, await resp.text()
    assert (await admin.post("/api/v1/plugins/plex/enable")).status == 200
    plex_tv.calls.clear()

    # plex.tv hangs, then is gone altogether.
    plex_tv.faults.hang = True
    visitor = new_browser(admin)
    page = await (await visitor.get("/login")).text()
    assert "Sign in with Plex" in page  # the provider is on, and still offered
    resp = await visitor.post(
        "/login",
        data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_of(page)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert (await visitor.get("/api/v1/auth/me")).status == 200
    await plex_tv.stop()
    script = new_browser(admin)
    await script.sign_in(*ADMIN)
    assert (await script.get("/")).status == 200
    # Signing in with a password never asked plex.tv anything.
    assert sum(plex_tv.calls.values()) == 0


# --- passwords -------------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2id_hashes(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    await add_user(client.app, *USER)
    async with client.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(User.username, User.password_hash))).all()
    assert {name for name, _ in rows} == {ADMIN[0], USER[0]}
    for name, password_hash in rows:
        assert password_hash.startswith("$argon2id$"), name
        params = dict(p.split("=") for p in password_hash.split("$")[3].split(","))
        assert int(params["m"]) >= 19 * 1024, "memory cost below the OWASP minimum"
        assert ADMIN[1] not in password_hash and USER[1] not in password_hash
    # Each hash is salted: the same password twice gives two different hashes.
    twin = await add_user(client.app, "twin", USER[1])
    async with client.app[ENGINE].connect() as conn:
        hashes = (
            (
                await conn.execute(
                    select(User.password_hash).where(
                        User.id.in_([twin]) | (User.username == USER[0])
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(set(hashes)) == 2


async def test_head_answers_as_get_does_without_a_body(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings, sign_in=False)
    resp = await client.head("/healthz")
    assert resp.status == 200 and await resp.read() == b""
    # Closed routes stay closed: a page sends to sign-in, the API says 401.
    resp = await client.head("/requests", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    assert (await client.head("/api/v1/requests")).status == 401
