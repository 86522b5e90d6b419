"""Sign-in with Plex against a fake plex.tv and a fake Plex Media Server, over real HTTP.

The fakes speak plex.tv's API v2 and the server's ``/identity`` and ``/`` as the published
spec describes them (checked here too, when the spec's folder is given). Each test drives the
flow as a browser does: ``/auth/plex/start`` sends it to the Plex page with the PIN code in the
URL fragment, the person approves it there (``FakePlexTV.approve``), and the browser comes back
to ``/auth/plex/callback``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from conftest import ADMIN, Client, MakeClient, require, wait_for
from jsonschema import Draft202012Validator
from medianest_plugins.plex import plextv
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select, update

import medianest
from medianest.core.auth import DEFAULT_PERMISSIONS
from medianest.core.keys import BOX, ENGINE, INSTALLATION_ID, REGISTRY
from medianest.core.models import User, UserIdentity
from medianest.core.settings import Settings, load_settings
from medianest.testing import FakePlexMediaServer, FakePlexTV, PlexAccount

CONTRACTS_ENV = "MEDIANEST_TEST_CONTRACTS_DIR"
EXPIRED = "The Plex sign-in expired before it was approved."
PLEX_TV_DOWN = "plex.tv cannot be reached right now; sign in with a local account instead."
SERVER_NAME = "Living Room Plex"


@dataclass
class Plex:
    """plex.tv with three accounts, and the server MediaNest is set up for."""

    tv: FakePlexTV
    server: FakePlexMediaServer
    owner: PlexAccount
    friend: PlexAccount
    stranger: PlexAccount


async def start_plex(pin_lifetime: int = 900) -> Plex:
    tv = FakePlexTV(pin_lifetime=pin_lifetime)
    owner = tv.add_account("olivia")
    friend = tv.add_account("sam")
    stranger = tv.add_account("mallory")
    server = FakePlexMediaServer(name=SERVER_NAME, tokens={owner.token})
    tv.add_server(SERVER_NAME, owner, shared_with=[friend], machine_id=server.machine_id)
    # The stranger has a server of their own, which must not count.
    tv.add_server("Mallory's box", stranger)
    await tv.start()
    await server.start()
    return Plex(tv, server, owner, friend, stranger)


@pytest.fixture
async def plex() -> AsyncIterator[Plex]:
    world = await start_plex()
    yield world
    await world.tv.stop()
    await world.server.stop()


def plugin_settings(plex: Plex, *, token: str | None = None) -> dict[str, Any]:
    settings = {
        "url": plex.server.url,
        "plex_tv_url": plex.tv.url,
        "plex_app_url": plex.tv.url + "/auth",
    }
    return settings | ({"token": token} if token else {})


async def configure(admin: Client, settings: dict[str, Any]) -> None:
    """What an admin does on the Integrations page: set the Plex plugin up and enable it."""
    resp = await admin.put("/api/v1/plugins/plex/settings", json=settings)
    assert resp.status == 200, await resp.text()
    resp = await admin.post("/api/v1/plugins/plex/enable")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "active"


def browser(client: Client) -> aiohttp.ClientSession:
    """A new browser (its own cookies) on the same MediaNest."""
    return aiohttp.ClientSession(
        base_url=f"http://{client.host}:{client.port}",
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def go_to_plex(web: aiohttp.ClientSession, next_url: str = "/") -> dict[str, str]:
    """Press "Sign in with Plex": the parameters MediaNest hands the Plex page."""
    resp = await web.get("/auth/plex/start", params={"next": next_url}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    location = urlsplit(resp.headers["Location"])
    assert location.fragment.startswith("?")
    params = {k: v[0] for k, v in parse_qs(location.fragment[1:]).items()}
    params["location"] = resp.headers["Location"]
    params["set-cookie"] = resp.headers.get("Set-Cookie", "")
    return params


async def plex_sign_in(
    web: aiohttp.ClientSession, plex: Plex, account: PlexAccount, next_url: str = "/"
) -> aiohttp.ClientResponse:
    """The whole flow: start, approve on plex.tv as ``account``, come back."""
    params = await go_to_plex(web, next_url)
    plex.tv.approve(params["code"], account)
    return await web.get("/auth/plex/callback", allow_redirects=False)


async def me(web: aiohttp.ClientSession) -> dict[str, Any]:
    resp = await web.get("/api/v1/auth/me")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def problem(text: str) -> str:
    """The message of a sign-in problem page."""
    found = re.search(r'<p role="alert" class="signin-problem">(.*?)</p>', text, re.S)
    assert found, text
    return found.group(1).strip().replace("&#39;", "'")


@pytest.fixture
async def admin(sqlite_settings: Settings, make_client: MakeClient, plex: Plex) -> Client:
    client = await make_client(sqlite_settings)
    await configure(client, plugin_settings(plex, token=plex.owner.token))
    return client


# --- who may sign in ------------------------------------------------------------------------


async def test_the_server_owner_becomes_the_first_admin(
    sqlite_settings: Settings, make_client: MakeClient, plex: Plex
) -> None:
    client = await make_client(sqlite_settings, sign_in=False)
    app = client.server.app
    # A new installation: no admin yet, so the plugin is set up straight in the registry.
    registry = app[REGISTRY]
    await registry.save_settings("plex", plugin_settings(plex))
    await registry.set_enabled("plex", True)

    login = await client.get("/login")
    assert 'href="/auth/plex/start?next=' in await login.text()
    assert "Sign in with Plex" in await login.text()

    # Somebody the server is shared with, even first, does not become the admin...
    async with browser(client) as web:
        assert (await plex_sign_in(web, plex, plex.friend)).status == 303
        assert (await me(web))["role"] == "user"
    # ...the owner does.
    async with browser(client) as web:
        resp = await plex_sign_in(web, plex, plex.owner, next_url="/admin/plugins")
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/admin/plugins"
        who = await me(web)
        assert (who["username"], who["role"]) == ("olivia", "admin")
        page = await web.get("/admin/plugins")
        assert page.status == 200
        assert "olivia" in await page.text()


async def test_the_owner_joins_as_a_user_when_an_admin_exists(admin: Client, plex: Plex) -> None:
    async with browser(admin) as web:
        resp = await plex_sign_in(web, plex, plex.owner)
        assert resp.status == 303, await resp.text()
        assert (await me(web))["role"] == "user"


async def test_a_user_the_server_is_shared_with_signs_in_as_a_user(
    admin: Client, plex: Plex
) -> None:
    async with browser(admin) as web:
        resp = await plex_sign_in(web, plex, plex.friend, next_url="/?from=plex")
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/?from=plex"
        who = await me(web)
        assert who["username"] == "sam"
        assert who["role"] == "user"
        # A new user's permissions: the core's defaults and the installed plugins'.
        defaults = admin.app[REGISTRY].default_permissions()
        assert defaults > DEFAULT_PERMISSIONS and "youtube" in defaults
        assert who["permissions"] == sorted(defaults)
        # An ordinary user: the admin's pages stay shut.
        assert (await web.get("/api/v1/plugins")).status == 403
        page = await web.get("/")
        assert page.status == 200
        assert 'class="whoami"' in await page.text() and "sam" in await page.text()
        # Signing in again finds the same account, not a new one.
    async with browser(admin) as web:
        assert (await plex_sign_in(web, plex, plex.friend)).status == 303
        assert (await me(web))["id"] == who["id"]


@pytest.mark.parametrize(
    ("plugin_token", "named"), [(True, SERVER_NAME), (False, "this Plex server")]
)
async def test_a_stranger_is_refused_with_the_server_named(
    sqlite_settings: Settings, make_client: MakeClient, plex: Plex, plugin_token: bool, named: str
) -> None:
    admin = await make_client(sqlite_settings)
    token = plex.owner.token if plugin_token else None
    await configure(admin, plugin_settings(plex, token=token))
    async with browser(admin) as web:
        resp = await plex_sign_in(web, plex, plex.stranger)
        assert resp.status == 403
        assert problem(await resp.text()) == f"This Plex account has no access to {named}."
        assert (await web.get("/api/v1/auth/me")).status == 401
    async with admin.server.app[ENGINE].connect() as conn:
        names = (await conn.execute(select(User.username))).scalars().all()
    assert "mallory" not in names


async def test_sign_in_never_sends_the_browser_off_site(admin: Client, plex: Plex) -> None:
    async with browser(admin) as web:
        resp = await plex_sign_in(web, plex, plex.friend, next_url="//evil.example/")
        assert resp.status == 303
        assert resp.headers["Location"] == "/"


async def test_the_pending_sign_in_is_a_server_side_secret(admin: Client, plex: Plex) -> None:
    async with browser(admin) as web:
        params = await go_to_plex(web)
        cookie = params["set-cookie"]
        assert cookie.startswith("medianest_plex_pin=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/auth/plex" in cookie
        assert "Secure" not in cookie  # plain http here
        # The browser holds a random nonce only: neither the PIN's id nor its code.
        nonce = cookie.split(";")[0].split("=", 1)[1]
        pin = next(p for p in plex.tv.pins() if p["code"] == params["code"])
        assert str(pin["id"]) not in nonce and params["code"] not in nonce
        # Another browser cannot finish it.
        async with browser(admin) as other:
            plex.tv.approve(params["code"], plex.friend)
            resp = await other.get("/auth/plex/callback", allow_redirects=False)
            assert problem(await resp.text()) == EXPIRED
            assert (await other.get("/api/v1/auth/me")).status == 401


@pytest.mark.parametrize("trusted", [True, False])
async def test_behind_an_https_proxy_plex_sends_the_browser_back_over_https(
    tmp_path: Path, make_client: MakeClient, plex: Plex, trusted: bool
) -> None:
    proxies = ["127.0.0.1/32"] if trusted else []
    settings = load_settings(data_dir=tmp_path / "data", trusted_proxies=proxies)
    admin = await make_client(settings)
    await configure(admin, plugin_settings(plex))
    async with browser(admin) as web:
        resp = await web.get(
            "/auth/plex/start",
            headers={"X-Forwarded-Proto": "https", "Host": "media.example.org"},
            allow_redirects=False,
        )
        assert resp.status == 303
        fragment = parse_qs(urlsplit(resp.headers["Location"]).fragment[1:])
        scheme = "https" if trusted else "http"
        assert fragment["forwardUrl"] == [f"{scheme}://media.example.org/auth/plex/callback"]
        assert ("Secure" in resp.headers["Set-Cookie"]) is trusted


async def test_one_process_starts_and_another_finishes_with_redis(
    tmp_path: Path, make_client: MakeClient, plex: Plex, redis_url: str
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", redis_url=redis_url)
    first = await make_client(settings)
    await configure(first, plugin_settings(plex))
    second = await make_client(settings, sign_in=False)

    async def plex_active() -> bool:
        return bool(second.server.app[REGISTRY].is_active("plex"))

    await wait_for(plex_active)
    # One browser; the two processes on the same host, as behind a load balancer.
    async with browser(first) as web:
        params = await go_to_plex(web)
        plex.tv.approve(params["code"], plex.friend)
        url = f"http://{second.host}:{second.port}/auth/plex/callback"
        resp = await web.get(url, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        assert (await me(web))["username"] == "sam"


# --- what can go wrong ----------------------------------------------------------------------


async def test_the_page_waits_for_the_approval_asking_plex_tv_once_per_load(
    admin: Client, plex: Plex
) -> None:
    async with browser(admin) as web:
        params = await go_to_plex(web)
        pin = next(p for p in plex.tv.pins() if p["code"] == params["code"])
        polls = f"GET /api/v2/pins/{pin['id']}"
        for load in (1, 2):
            resp = await web.get("/auth/plex/callback", allow_redirects=False)
            assert resp.status == 200
            page = await resp.text()
            assert "Waiting for Plex…" in page
            assert '<meta http-equiv="refresh" content="2">' in page
            assert "<script>" not in page  # the page reloads itself without inline scripts
            assert plex.tv.calls[polls] == load
        plex.tv.approve(params["code"], plex.friend)
        resp = await web.get("/auth/plex/callback", allow_redirects=False)
        assert resp.status == 303
        assert (await me(web))["username"] == "sam"
        # The PIN is used up: coming back again does not sign in a second time.
        again = await web.get("/auth/plex/callback", allow_redirects=False)
        assert problem(await again.text()) == EXPIRED


async def test_a_pin_that_expires_before_approval_gives_a_clear_message(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    plex = await start_plex(pin_lifetime=1)
    try:
        admin = await make_client(sqlite_settings)
        await configure(admin, plugin_settings(plex))
        async with browser(admin) as web:
            params = await go_to_plex(web, next_url="/somewhere")
            pin = next(p for p in plex.tv.pins() if p["code"] == params["code"])
            assert pin["expiresIn"] == 1

            pages: list[str] = []

            async def expired() -> bool:
                resp = await web.get("/auth/plex/callback", allow_redirects=False)
                pages.append(await resp.text())
                return resp.status == 400

            # The page waits while the PIN lives, then says it expired.
            await wait_for(expired, seconds=5)
            assert "Waiting for Plex…" in pages[0]
            assert problem(pages[-1]) == EXPIRED
            assert 'href="/auth/plex/start?next=%2Fsomewhere">Try again</a>' in pages[-1]
            # "Try again" starts a new PIN.
            assert (await go_to_plex(web, "/somewhere"))["code"] != params["code"]
            assert (await web.get("/api/v1/auth/me")).status == 401
    finally:
        await plex.tv.stop()
        await plex.server.stop()


async def test_a_pin_plex_tv_no_longer_knows_counts_as_expired(admin: Client, plex: Plex) -> None:
    async with browser(admin) as web:
        params = await go_to_plex(web)
        params["id"] = next(str(p["id"]) for p in plex.tv.pins() if p["code"] == params["code"])
        # plex.tv forgets the PIN (what it does with an expired one): it answers 404.
        port = plex.tv.port
        await plex.tv.stop()
        forgetful = FakePlexTV(accounts=plex.tv.accounts, servers=plex.tv.servers)
        await forgetful.start(port)
        try:
            resp = await web.get("/auth/plex/callback", allow_redirects=False)
            assert resp.status == 400
            assert problem(await resp.text()) == EXPIRED
            assert forgetful.calls[f"GET /api/v2/pins/{params['id']}"] == 1
        finally:
            await forgetful.stop()


async def test_plex_tv_down_leaves_a_clear_page_and_local_sign_in_working(
    admin: Client, plex: Plex
) -> None:
    async with browser(admin) as web:
        params = await go_to_plex(web)
        await plex.tv.stop()
        # Down while the browser is on the Plex page...
        resp = await web.get("/auth/plex/callback", allow_redirects=False)
        assert resp.status == 503
        assert problem(await resp.text()) == PLEX_TV_DOWN
        # ...and when starting.
        resp = await web.get("/auth/plex/start", allow_redirects=False)
        assert resp.status == 503
        assert problem(await resp.text()) == PLEX_TV_DOWN
        assert "Try again" in await resp.text()
        assert params["code"]
    # The local admin still gets in, with the sign-in form.
    async with browser(admin) as web:
        form = await (await web.get("/login")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None
        resp = await web.post(
            "/login",
            data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf.group(1)},
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        assert (await me(web))["role"] == "admin"


async def test_a_slow_plex_tv_times_out_into_the_same_clear_page(
    sqlite_settings: Settings,
    make_client: MakeClient,
    plex: Plex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A shorter read timeout than the real one, so that the test need not wait for it.
    monkeypatch.setattr(plextv, "TIMEOUT", aiohttp.ClientTimeout(sock_connect=5, sock_read=0.3))
    admin = await make_client(sqlite_settings)
    await configure(admin, plugin_settings(plex))
    plex.tv.faults.latency = 1.0
    async with browser(admin) as web:
        resp = await web.get("/auth/plex/start", allow_redirects=False)
        assert resp.status == 503
        assert problem(await resp.text()) == PLEX_TV_DOWN
    plex.tv.faults.clear()


async def test_the_plex_server_down_is_said_plainly(admin: Client, plex: Plex) -> None:
    await plex.server.stop()
    async with browser(admin) as web:
        resp = await plex_sign_in(web, plex, plex.friend)
        assert resp.status == 503
        assert "The Plex server cannot be reached right now" in problem(await resp.text())
        assert (await web.get("/api/v1/auth/me")).status == 401


async def test_without_a_plex_server_the_button_says_an_admin_must_set_it(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    admin = await make_client(sqlite_settings)
    resp = await admin.post("/api/v1/plugins/plex/enable")
    assert resp.status == 200
    async with browser(admin) as web:
        assert "Sign in with Plex" in await (await web.get("/login")).text()
        resp = await web.get("/auth/plex/start", allow_redirects=False)
        assert resp.status == 503
        assert "an administrator must set the Plex server first" in problem(await resp.text())


async def test_disabled_plex_plugin_offers_no_plex_sign_in(admin: Client, plex: Plex) -> None:
    assert (await admin.post("/api/v1/plugins/plex/disable")).status == 200
    async with browser(admin) as web:
        assert "Sign in with Plex" not in await (await web.get("/login")).text()
        assert (await web.get("/auth/plex/start", allow_redirects=False)).status == 404


async def test_a_disabled_user_cannot_come_back_through_plex(admin: Client, plex: Plex) -> None:
    async with browser(admin) as web:
        assert (await plex_sign_in(web, plex, plex.friend)).status == 303
    async with admin.server.app[ENGINE].begin() as conn:
        await conn.execute(update(User).where(User.username == "sam").values(disabled=True))
    async with browser(admin) as web:
        resp = await plex_sign_in(web, plex, plex.friend)
        assert resp.status == 403
        assert "disabled" in problem(await resp.text())


# --- what MediaNest sends, and what it keeps --------------------------------------------------


REQUIRED_HEADERS = ("X-Plex-Product", "X-Plex-Version", "X-Plex-Device", "X-Plex-Platform")


async def test_every_plex_tv_request_identifies_this_installation_across_restarts(
    sqlite_settings: Settings, make_client: MakeClient, plex: Plex
) -> None:
    first = await make_client(sqlite_settings)
    await configure(first, plugin_settings(plex))
    installation = first.server.app[INSTALLATION_ID]
    async with browser(first) as web:
        params = await go_to_plex(web)
        assert params["clientID"] == installation
        assert params["context[device][product]"] == "MediaNest"
        assert params["forwardUrl"] == str(first.make_url("/auth/plex/callback"))
        plex.tv.approve(params["code"], plex.owner)
        assert (await web.get("/auth/plex/callback", allow_redirects=False)).status == 303
    await first.close()

    # The same installation, restarted: the same identifier.
    second = await make_client(sqlite_settings)
    assert second.server.app[INSTALLATION_ID] == installation
    async with browser(second) as web:
        assert (await plex_sign_in(web, plex, plex.friend)).status == 303

    sent = plex.tv.requests
    # Both sign-ins: a PIN, its check, the account and its resources each time.
    assert len(sent) == 8
    for headers in sent:
        assert headers.get("X-Plex-Client-Identifier") == installation
        assert headers.get("X-Plex-Product") == "MediaNest"
        assert headers.get("X-Plex-Version") == medianest.__version__
        assert all(headers.get(name) for name in REQUIRED_HEADERS), headers
        assert headers.get("Accept") == "application/json"


async def test_each_users_plex_token_is_stored_encrypted(
    admin: Client, plex: Plex, sqlite_settings: Settings
) -> None:
    # The plugin's own token is another story: this test is about the users' tokens.
    await configure(admin, plugin_settings(plex))
    for account in (plex.owner, plex.friend):
        async with browser(admin) as web:
            assert (await plex_sign_in(web, plex, account)).status == 303
    app = admin.server.app
    async with app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(UserIdentity.subject, UserIdentity.secret))).all()
    stored = {subject: secret for subject, secret in rows}
    for account in (plex.owner, plex.friend):
        secret = stored[str(account.id)]
        assert secret and account.token not in secret
        # Encrypted, not thrown away: MediaNest can still use it for the user.
        associated = f"identity:plex:{account.id}"
        assert app[BOX].decrypt(secret, associated=associated) == account.token
    await admin.close()  # everything written to the file
    path = sqlite_settings.sqlite_path
    assert path is not None
    dump = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert b"sam" in dump  # the file is readable as it is: the usernames are there in clear
    for account in (plex.owner, plex.friend):
        assert account.token.encode() not in dump


async def test_no_plex_token_appears_in_the_logs(
    admin: Client, plex: Plex, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await plex.server.stop()
    async with browser(admin) as web:
        assert (await plex_sign_in(web, plex, plex.friend)).status == 503
    await plex.server.start()  # the same port again
    for account in (plex.friend, plex.stranger):
        async with browser(admin) as web:
            await plex_sign_in(web, plex, account)
    plex.tv.faults.body = "html"  # plex.tv answering nonsense is logged, with its cause
    async with browser(admin) as web:
        assert (await web.get("/auth/plex/start", allow_redirects=False)).status == 503
    plex.tv.faults.clear()
    assert "cannot start a Plex sign-in" in caplog.text
    assert "cannot finish a Plex sign-in" in caplog.text
    assert "has no access to" in caplog.text
    for account in (plex.owner, plex.friend, plex.stranger):
        assert account.token not in caplog.text


# --- the fakes follow the published spec -----------------------------------------------------


SPEC_URI = "urn:plex:openapi"


@pytest.fixture(scope="module")
def plex_spec() -> dict[str, Any]:
    folder = os.environ.get(CONTRACTS_ENV)
    require(folder, f"{CONTRACTS_ENV} is not set: it names the folder of the upstream API specs")
    assert folder is not None
    path = Path(folder) / "plex.openapi.yaml"
    require(path.exists(), f"{path} does not exist")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 10 times faster
    return dict(yaml.load(path.read_text(), Loader=loader))


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def response_validator(
    spec: dict[str, Any], path: str, method: str, status: str
) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    ref = _pointer(
        "paths", path, method, "responses", status, "content", "application/json", "schema"
    )
    return Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/{ref}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


async def test_the_fakes_answer_as_the_spec_describes(
    plex_spec: dict[str, Any], plex: Plex
) -> None:
    tv = plex.tv.url + "/api/v2"
    base = {"X-Plex-Client-Identifier": "contract-test", "Accept": "application/json"}
    owner = base | {"X-Plex-Token": plex.owner.token}
    async with aiohttp.ClientSession() as http:

        async def answer(method: str, url: str, status: int, **kwargs: Any) -> Any:
            async with http.request(method, url, **kwargs) as resp:
                assert resp.status == status, await resp.text()
                assert resp.content_type == "application/json"
                return await resp.json()

        new_pin = await answer("POST", f"{tv}/pins", 201, params={"strong": "true"}, headers=base)
        plex.tv.approve(new_pin["code"], plex.friend)
        pin = await answer("GET", f"{tv}/pins/{new_pin['id']}", 200, headers=base)
        assert pin["authToken"] == plex.friend.token
        checks = [
            ("/pins", "post", "201", new_pin),
            ("/pins/{pinID}", "get", "200", pin),
            ("/user", "get", "200", await answer("GET", f"{tv}/user", 200, headers=owner)),
            (
                "/resources",
                "get",
                "200",
                await answer(
                    "GET",
                    f"{tv}/resources",
                    200,
                    params={"includeHttps": "1", "includeRelay": "1"},
                    headers=owner,
                ),
            ),
            (
                "/identity",
                "get",
                "200",
                await answer("GET", plex.server.url + "/identity", 200, headers=base),
            ),
            ("/", "get", "200", await answer("GET", plex.server.url + "/", 200, headers=owner)),
        ]
        # And the refusals, in plex.tv's error shape.
        checks += [
            ("/pins/{pinID}", "get", "404", await answer("GET", f"{tv}/pins/1", 404, headers=base)),
            (
                "/pins",
                "post",
                "400",
                await answer("POST", f"{tv}/pins", 400, headers={"Accept": "application/json"}),
            ),
            ("/user", "get", "401", await answer("GET", f"{tv}/user", 401, headers=base)),
            ("/resources", "get", "401", await answer("GET", f"{tv}/resources", 401, headers=base)),
        ]
        # The server wants a token for its capabilities, as a real one does.
        async with http.get(plex.server.url + "/", headers=base) as resp:
            assert resp.status == 401
    for path, method, status, body in checks:
        errors = [
            e.message for e in response_validator(plex_spec, path, method, status).iter_errors(body)
        ]
        assert errors == [], f"{method.upper()} {path} {status}: {errors}"


async def test_every_plex_tv_path_of_the_fake_is_in_the_spec(plex_spec: dict[str, Any]) -> None:
    def shape(path: str) -> str:
        return re.sub(r"{[^}]+}", "{}", path)

    plex_tv = "https://plex.tv/api/v2"
    spec_ops = {
        (method.upper(), shape(path))
        for path, item in plex_spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and plex_tv in [s["url"] for s in op.get("servers", [])]
    }
    served = {
        (route.method, shape(route.resource.canonical[len("/api/v2") :]))
        for route in FakePlexTV().app().router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v2/")
        and route.method != "HEAD"  # aiohttp adds HEAD to every GET
    }
    assert served, "the fake serves nothing under /api/v2"
    assert served - spec_ops == set()
    # The server's paths the fake answers are the spec's server paths (no plex.tv server).
    server_ops = {
        (method.upper(), shape(path))
        for path, item in plex_spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
        and method in ("get", "post", "put", "delete")
        and not op.get("servers")
    }
    pms = {
        (route.method, shape(route.resource.canonical))
        for route in FakePlexMediaServer().app().router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    # The collections are only in the newer file; tests/test_fake_pms.py checks them there.
    from test_fake_pms import ONLY_IN_NEWER

    assert pms - server_ops - ONLY_IN_NEWER == set()


async def test_starting_plex_sign_ins_is_rate_limited_per_address(tmp_path, make_client):
    """Nobody can make MediaNest ask plex.tv for PINs without end."""
    from medianest.core.settings import load_settings

    client = await make_client(
        load_settings(data_dir=tmp_path / "d", rate_limit_sign_in="2/minute")
    )
    await client.post("/api/v1/plugins/plex/enable")
    statuses = [
        (await client.get("/auth/plex/start", allow_redirects=False)).status for _ in range(3)
    ]
    assert statuses[:2] != [429, 429] and statuses[2] == 429
