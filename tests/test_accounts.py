"""Your account (sessions, API tokens), the users admin and the audit log, over real HTTP.

Each browser is a client with its own cookie jar on the same running app; changes made by an
admin must reach the user's very next request, on this process and on another one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from conftest import ADMIN, Client, MakeClient, add_user
from plugins_for_tests import ProbePlugin
from sqlalchemy import select

from medianest import PermissionSpec, Route, hookimpl
from medianest.core.auth import ExternalIdentity, Permission, user_for_identity
from medianest.core.keys import BOX, ENGINE
from medianest.core.models import User
from medianest.core.settings import Settings, load_settings

BOB = ("bob", "bob's long password")
CAROL = ("carol", "carol's long password")

Browser = Callable[..., Awaitable[Client]]
# These tests sign in many browsers from one address; the limit itself is tested elsewhere.
SIGN_INS = "60/minute"


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", rate_limit_sign_in=SIGN_INS)


@pytest.fixture
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """On a fresh SQLite file, then on a fresh PostgreSQL database."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    return load_settings(data_dir=tmp_path / "data", database_url=url, rate_limit_sign_in=SIGN_INS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Another browser (its own cookies) on the app ``of`` serves, signed in if asked."""
    opened: list[Client] = []

    async def open_browser(
        of: Client, user: tuple[str, str] | None = None, *, agent: str = "TestBrowser/1.0"
    ) -> Client:
        client = Client(of.server, headers={"User-Agent": agent})
        await client.start_server()  # the server runs already: this only binds the client
        opened.append(client)
        if user is not None:
            await client.sign_in(*user)
        return client

    yield open_browser
    for client in opened:
        await client.session.close()


async def error_of(resp: ClientResponse, status: int) -> dict[str, Any]:
    """The error of an API answer, checked to be in MediaNest's one error shape."""
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    return dict(body["error"])


async def ok_json(resp: ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def page(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path, allow_redirects=False)
    text = await resp.text()
    assert resp.status == status, f"{path}: {resp.status} {text[:500]}"
    return text


async def user_id(client: Client, username: str) -> str:
    users = (await ok_json(await client.get("/api/v1/users?limit=200")))["users"]
    return next(u["id"] for u in users if u["username"] == username)


async def current_session(client: Client) -> dict[str, Any]:
    sessions = (await ok_json(await client.get("/api/v1/auth/sessions")))["sessions"]
    return next(s for s in sessions if s["current"])


async def patch_user(client: Client, uid: str, **changes: Any) -> ClientResponse:
    return await client.patch(f"/api/v1/users/{uid}", json=changes)


async def audit(client: Client, **filters: Any) -> list[dict[str, Any]]:
    body = await ok_json(await client.get("/api/v1/audit", params=filters))
    return list(body["entries"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class PageAudit(HTMLParser):
    """What a page holds that CSP and CSRF care about: forms, scripts, inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.style_blocks = 0
        self.nav: list[str] = []
        self._in_nav = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (a.get("method") or "get").lower(), "csrf": None})
        elif tag == "input" and a.get("name") == "csrf_token" and self.forms:
            self.forms[-1]["csrf"] = a.get("value")
        elif tag == "script" and not a.get("src"):
            self.inline_scripts += 1
        elif tag == "style":
            self.style_blocks += 1
        elif tag == "nav" and a.get("aria-label") == "Main":
            self._in_nav = True
        elif tag == "a" and self._in_nav:
            self.nav.append(a.get("href") or "")
        if "style" in a or any(name.startswith("on") for name in a):
            self.inline_styles += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav":
            self._in_nav = False


def check_page(html: str, csrf: str | None) -> PageAudit:
    """Every state-changing form carries the session's CSRF token; nothing inline for CSP."""
    found = PageAudit()
    found.feed(html)
    assert found.inline_scripts == 0 and found.style_blocks == 0 and found.inline_styles == 0
    posts = [f for f in found.forms if f["method"] == "post"]
    assert posts, "the page has no form"
    for form in posts:
        assert form["csrf"] == csrf, form
    return found


def token_row(html: str, token_id: str) -> str:
    match = re.search(rf'<tr data-token="{token_id}">(.*?)</tr>', html, re.S)
    assert match, f"token {token_id} is not listed"
    return match.group(1)


# --- who sees which page -------------------------------------------------------------------


async def test_each_page_opens_for_who_may_see_it_and_is_refused_to_others(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    app = admin.server.app
    bob_id = await add_user(app, *BOB)
    await add_user(app, *CAROL, permissions=frozenset({Permission.MANAGE_USERS}))
    bob = await browser(admin, BOB)
    carol = await browser(admin, CAROL)
    anonymous = await browser(admin)
    admin_pages = ["/admin/users", f"/admin/users/{bob_id}", "/admin/audit"]

    # The admin sees everything; every form carries the CSRF token, nothing is inline.
    html = await page(admin, "/account")
    assert "Where you are signed in" in html and "API tokens" in html
    assert set(check_page(html, admin.csrf).nav) >= {"/account", "/admin/users", "/admin/audit"}
    users = await page(admin, "/admin/users")
    check_page(users, admin.csrf)
    assert f'href="/admin/users/{bob_id}">bob</a>' in users and "carol" in users
    one = await page(admin, f"/admin/users/{bob_id}")
    check_page(one, admin.csrf)
    assert "Request films" in one and 'name="role"' in one
    audit_page = await page(admin, "/admin/audit")
    assert "sign_in" in audit_page

    # A plain user has an account page and nothing else of these.
    html = await page(bob, "/account")
    assert "Signed in as <strong>bob</strong>" in html
    nav = check_page(html, bob.csrf).nav
    assert "/account" in nav and "/admin/users" not in nav and "/admin/audit" not in nav
    for path in admin_pages:
        assert "permission “Manage users”" in await page(bob, path, 403)
    for path in ("/api/v1/users", f"/api/v1/users/{bob_id}", "/api/v1/audit"):
        assert (await error_of(await bob.get(path), 403))["code"] == "forbidden"

    # Managing users is enough for the users admin and the audit log, not for integrations.
    nav = check_page(await page(carol, "/admin/users"), carol.csrf).nav
    assert "/admin/audit" in nav and "/admin/plugins" not in nav
    check_page(await page(carol, f"/admin/users/{bob_id}"), carol.csrf)
    await page(carol, "/admin/audit")
    await page(carol, "/admin/plugins", 403)

    # Nobody signed in is sent to sign in from pages, and refused by the API.
    for path in ["/account", *admin_pages]:
        resp = await anonymous.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=/")
    for path in ("/api/v1/auth/sessions", "/api/v1/tokens", "/api/v1/users", "/api/v1/audit"):
        await error_of(await anonymous.get(path), 401)


# --- API tokens ----------------------------------------------------------------------------


async def test_api_token_is_shown_once_works_with_both_headers_and_stops_when_revoked(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    await add_user(admin.server.app, *BOB)
    bob = await browser(admin, BOB)
    script = await browser(admin)  # no cookies: only the token

    resp = await bob.post("/account/tokens", data={"name": "backup script"})
    html = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    match = re.search(r"<code data-new-token>(mn_[\w-]+)</code>", html)
    assert match, html
    raw = match.group(1)
    assert "will not be shown again" in html

    # Never again: not on the page, not in the API.
    listed = (await ok_json(await bob.get("/api/v1/tokens")))["tokens"]
    assert [t["name"] for t in listed] == ["backup script"]
    assert "token" not in listed[0] and listed[0]["last_used_at"] is None
    token_id = listed[0]["id"]
    html = await page(bob, "/account")
    assert raw not in html and "backup script" in html
    assert "never" in token_row(html, token_id)

    # It works as bob with either header, and needs no CSRF token for changes.
    for headers in (bearer(raw), {"X-Api-Key": raw}):
        me = await ok_json(await script.get("/api/v1/auth/me", headers=headers))
        assert me["username"] == "bob" and me["csrf_token"] is None
    made = await ok_json(
        await script.post("/api/v1/tokens", json={"name": "second"}, headers=bearer(raw)), 201
    )
    assert made["token"].startswith("mn_") and made["token"] != raw

    # Its use shows.
    listed = (await ok_json(await bob.get("/api/v1/tokens")))["tokens"]
    assert next(t for t in listed if t["id"] == token_id)["last_used_at"] is not None
    row = token_row(await page(bob, "/account"), token_id)
    assert "never" not in row and row.count("<time") == 2

    # Someone else cannot revoke it; its owner can, and then it is refused at once.
    await error_of(await admin.delete(f"/api/v1/tokens/{token_id}"), 404)
    assert (await script.get("/api/v1/auth/me", headers=bearer(raw))).status == 200
    resp = await bob.post(f"/account/tokens/{token_id}/revoke", allow_redirects=False)
    assert resp.status == 303
    for headers in (bearer(raw), {"X-Api-Key": raw}):
        error = await error_of(await script.get("/api/v1/auth/me", headers=headers), 401)
        assert "revoked" in error["message"]
    assert token_id not in await page(bob, "/account")

    # The API revokes the same way.
    await ok_json(await script.get("/api/v1/tokens", headers=bearer(made["token"])))
    assert await ok_json(await bob.delete(f"/api/v1/tokens/{made['id']}")) == {"revoked": 1}
    await error_of(await script.get("/api/v1/tokens", headers=bearer(made["token"])), 401)
    await error_of(await bob.delete(f"/api/v1/tokens/{made['id']}"), 404)

    # Creating and revoking tokens is audited, without the token.
    entries = await audit(admin, action="token.")
    assert [e["action"] for e in entries] == [
        "token.revoke",
        "token.revoke",
        "token.create",
        "token.create",
    ]
    assert raw not in str(entries) and made["token"] not in str(entries)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "scope": "all"}, 422),
        ({"name": 5}, 422),
        ({"name": "   "}, 422),
        ({"name": "x" * 101}, 422),
        ({}, 422),
        ("not json", 400),
    ],
)
async def test_bad_token_requests_are_refused_with_the_error_shape(
    sqlite_settings: Settings, make_client: MakeClient, body: Any, status: int
) -> None:
    admin = await make_client(sqlite_settings)
    if isinstance(body, str):
        resp = await admin.post(
            "/api/v1/tokens", data=body, headers={"Content-Type": "application/json"}
        )
    else:
        resp = await admin.post("/api/v1/tokens", json=body)
    await error_of(resp, status)
    assert (await ok_json(await admin.get("/api/v1/tokens")))["tokens"] == []
    await error_of(await admin.delete("/api/v1/tokens/not-a-token"), 404)
    await error_of(await admin.delete(f"/api/v1/tokens/{uuid.uuid4()}"), 404)


async def test_token_form_without_a_name_says_so(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    admin = await make_client(sqlite_settings)
    resp = await admin.post("/account/tokens", data={"name": ""})
    assert resp.status == 422 and "Name the token" in await resp.text()
    assert (await ok_json(await admin.get("/api/v1/tokens")))["tokens"] == []


# --- sessions ------------------------------------------------------------------------------


async def test_sessions_are_listed_revoked_one_by_one_and_everywhere(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    await add_user(admin.server.app, *BOB)
    laptop = await browser(admin, BOB, agent="Laptop Firefox")
    phone = await browser(admin, BOB, agent="Phone Safari")

    sessions = (await ok_json(await laptop.get("/api/v1/auth/sessions")))["sessions"]
    assert len(sessions) == 2
    mine = next(s for s in sessions if s["current"])
    other = next(s for s in sessions if not s["current"])
    assert mine["user_agent"] == "Laptop Firefox" and other["user_agent"] == "Phone Safari"
    assert mine["provider"] == "local" and mine["address"] == "127.0.0.1"
    html = await page(laptop, "/account")
    this_one = re.search(rf'<tr data-session="{mine["id"]}" class="current">(.*?)</tr>', html, re.S)
    assert this_one and "this one" in this_one.group(1) and "Laptop Firefox" in this_one.group(1)
    assert "Phone Safari" in html

    # Revoking the phone's session signs the phone out at its next request, not the laptop.
    resp = await laptop.delete(f"/api/v1/auth/sessions/{other['id']}")
    assert await ok_json(resp) == {"revoked": 1}
    await error_of(await phone.get("/api/v1/auth/me"), 401)
    resp = await phone.get("/account", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login?next=/account"
    assert (await ok_json(await laptop.get("/api/v1/auth/me")))["username"] == "bob"

    # Only your own sessions: someone else's is unknown to you.
    admin_session = await current_session(admin)
    await error_of(await laptop.delete(f"/api/v1/auth/sessions/{admin_session['id']}"), 404)
    await error_of(await laptop.delete("/api/v1/auth/sessions/nonsense"), 404)
    await ok_json(await admin.get("/api/v1/auth/me"))

    # The page's revoke button ends one session.
    tablet = await browser(admin, BOB, agent="Tablet")
    tablet_session = await current_session(tablet)
    resp = await laptop.post(
        f"/account/sessions/{tablet_session['id']}/revoke", allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/account#sessions"
    await error_of(await tablet.get("/api/v1/auth/me"), 401)

    # "Sign out everywhere" ends every session, this one included, and goes to sign-in.
    phone = await browser(admin, BOB, agent="Phone Safari")
    resp = await laptop.post("/account/sessions/revoke-all", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert 'medianest_session=""' in resp.headers["Set-Cookie"]  # the cookie goes too
    for device in (laptop, phone):
        await error_of(await device.get("/api/v1/auth/me"), 401)
    await ok_json(await admin.get("/api/v1/auth/me"))

    # And through the API.
    laptop = await browser(admin, BOB)
    phone = await browser(admin, BOB)
    assert await ok_json(await laptop.post("/api/v1/auth/sessions/revoke-all")) == {"revoked": 2}
    for device in (laptop, phone):
        await error_of(await device.get("/api/v1/auth/me"), 401)

    # The phone still holds its revoked cookie (only the laptop's answer dropped it): it
    # signs in again at the first try. So does the laptop, through the sign-in form.
    assert "medianest_session" in {c.key for c in phone.session.cookie_jar}
    await phone.sign_in(*BOB)
    laptop.csrf = None  # the sign-in form carries its own token
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', await page(laptop, "/login"))
    assert form_token
    resp = await laptop.post(
        "/login",
        data={"username": BOB[0], "password": BOB[1], "csrf_token": form_token.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert "Where you are signed in" in await page(laptop, "/account")

    actions = [e["action"] for e in await audit(admin, action="session.", actor="bob")]
    assert actions == [
        "session.revoke_all",
        "session.revoke_all",
        "session.revoke",
        "session.revoke",
    ]


async def test_revoking_sessions_needs_the_csrf_token_when_signed_in_by_cookie(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    await add_user(admin.server.app, *BOB)
    bob = await browser(admin, BOB)
    bob.csrf = None  # a page elsewhere posting with bob's cookie has no token
    resp = await bob.post("/account/sessions/revoke-all", allow_redirects=False)
    assert resp.status == 403
    error = await error_of(await bob.post("/api/v1/auth/sessions/revoke-all"), 403)
    assert error["code"] == "csrf_failed"
    await ok_json(await bob.get("/api/v1/auth/me"))


# --- users admin ---------------------------------------------------------------------------


async def test_permission_and_role_changes_apply_at_the_next_request(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    bob_id = str(await add_user(admin.server.app, *BOB))
    bob = await browser(admin, BOB)
    script = await browser(admin)
    token = (await ok_json(await bob.post("/api/v1/tokens", json={"name": "t"}), 201))["token"]

    await page(bob, "/admin/plugins", 403)
    await error_of(await script.get("/api/v1/plugins", headers=bearer(token)), 403)

    # Granted from the admin page's form: bob's next request may.
    form = [("permissions", p) for p in ("request_movies", "manage_settings")] + [("role", "user")]
    resp = await admin.post(f"/admin/users/{bob_id}", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/admin/users/{bob_id}"
    html = await page(bob, "/admin/plugins")
    assert "/admin/plugins" in check_page(html, bob.csrf).nav
    await ok_json(await script.get("/api/v1/plugins", headers=bearer(token)))
    me = await ok_json(await bob.get("/api/v1/auth/me"))
    assert me["permissions"] == ["manage_settings", "request_movies"]

    # Taken away through the API: refused at once, by cookie and by token.
    resp = await patch_user(admin, bob_id, permissions=["request_movies"])
    assert (await ok_json(resp))["permissions"] == ["request_movies"]
    await page(bob, "/admin/plugins", 403)
    await error_of(await script.get("/api/v1/plugins", headers=bearer(token)), 403)

    # Made an admin: may everything; made a user again: may not.
    await ok_json(await patch_user(admin, bob_id, role="admin"))
    await ok_json(await bob.get("/api/v1/users"))
    await page(bob, "/admin/audit")
    await ok_json(await patch_user(admin, bob_id, role="user"))
    await error_of(await bob.get("/api/v1/users"), 403)
    await error_of(await script.get("/api/v1/users", headers=bearer(token)), 403)

    # Every change is in the audit log: who, what, from where.
    entries = await audit(admin, action="user.update")
    assert [e["details"] for e in entries] == [
        {"role": "user"},
        {"role": "admin"},
        {"permissions": ["request_movies"]},
        {"permissions": ["manage_settings", "request_movies"]},
    ]
    assert {(e["actor"], e["target"], e["address"]) for e in entries} == {
        ("admin", "bob", "127.0.0.1")
    }


async def test_disabling_a_user_cuts_them_off_at_the_next_request(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    bob_id = str(await add_user(admin.server.app, *BOB))
    bob = await browser(admin, BOB)
    script = await browser(admin)
    token = (await ok_json(await bob.post("/api/v1/tokens", json={"name": "t"}), 201))["token"]
    await ok_json(await script.get("/api/v1/auth/me", headers=bearer(token)))
    await page(bob, "/account")

    resp = await admin.post(
        f"/admin/users/{bob_id}/access", data={"disabled": "1"}, allow_redirects=False
    )
    assert resp.status == 303
    resp = await bob.get("/account", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    await error_of(await bob.get("/api/v1/auth/me"), 401)
    await error_of(await script.get("/api/v1/auth/me", headers=bearer(token)), 401)
    fresh = await browser(admin)
    await error_of(
        await fresh.post("/api/v1/auth/login", json={"username": BOB[0], "password": BOB[1]}), 401
    )
    shown = await ok_json(await admin.get(f"/api/v1/users/{bob_id}"))
    assert shown["disabled"] is True
    assert (await ok_json(await admin.get(f"/api/v1/users/{bob_id}/sessions")))["sessions"] == []
    assert "disabled" in await page(admin, "/admin/users")

    # Enabled again, bob signs in, and the token works again.
    resp = await admin.post(
        f"/admin/users/{bob_id}/access", data={"disabled": "0"}, allow_redirects=False
    )
    assert resp.status == 303
    await fresh.sign_in(*BOB)
    await ok_json(await script.get("/api/v1/auth/me", headers=bearer(token)))
    details = [e["details"] for e in await audit(admin, action="user.update")]
    assert details == [{"disabled": False}, {"disabled": True}]


async def test_admin_revokes_one_or_all_sessions_of_a_user(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    bob_id = str(await add_user(admin.server.app, *BOB))
    laptop = await browser(admin, BOB, agent="Laptop")
    phone = await browser(admin, BOB, agent="Phone")
    listed = (await ok_json(await admin.get(f"/api/v1/users/{bob_id}/sessions")))["sessions"]
    assert sorted(s["user_agent"] for s in listed) == ["Laptop", "Phone"]
    assert not any(s["current"] for s in listed)
    html = await page(admin, f"/admin/users/{bob_id}")
    assert "Laptop" in html and "Phone" in html

    phone_session = next(s for s in listed if s["user_agent"] == "Phone")
    resp = await admin.post(
        f"/admin/users/{bob_id}/sessions/{phone_session['id']}/revoke", allow_redirects=False
    )
    assert resp.status == 303
    await error_of(await phone.get("/api/v1/auth/me"), 401)
    await ok_json(await laptop.get("/api/v1/auth/me"))

    # A session of somebody else is not bob's.
    admin_session = await current_session(admin)
    await error_of(
        await admin.delete(f"/api/v1/users/{bob_id}/sessions/{admin_session['id']}"), 404
    )
    await error_of(await admin.delete(f"/api/v1/users/{bob_id}/sessions/{uuid.uuid4()}"), 404)

    phone = await browser(admin, BOB)
    assert await ok_json(await admin.delete(f"/api/v1/users/{bob_id}/sessions")) == {"revoked": 2}
    for device in (laptop, phone):
        await error_of(await device.get("/api/v1/auth/me"), 401)
    laptop = await browser(admin, BOB)
    resp = await admin.post(f"/admin/users/{bob_id}/sessions/revoke-all", allow_redirects=False)
    assert resp.status == 303
    await error_of(await laptop.get("/api/v1/auth/me"), 401)
    await ok_json(await admin.get("/api/v1/auth/me"))


@pytest.mark.parametrize("db_settings", ["sqlite", "postgres"], indirect=True)
async def test_the_last_enabled_admin_cannot_demote_or_disable_themself(
    db_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(db_settings)
    admin_id = await user_id(admin, ADMIN[0])

    for change in ({"role": "user"}, {"disabled": True}):
        error = await error_of(await patch_user(admin, admin_id, **change), 409)
        assert "last enabled administrator" in error["message"]
    resp = await admin.post(f"/admin/users/{admin_id}/access", data={"disabled": "1"})
    assert resp.status == 409 and "last enabled administrator" in await resp.text()
    resp = await admin.post(f"/admin/users/{admin_id}", data={"role": "user"})
    assert resp.status == 409
    me = await ok_json(await admin.get("/api/v1/auth/me"))
    assert me["role"] == "admin"
    assert await audit(admin, action="user.") == []

    # With a second admin, the first may step down; then the second is the last one.
    carol_id = str(await add_user(admin.server.app, *CAROL, role="admin"))
    carol = await browser(admin, CAROL)
    assert (await ok_json(await patch_user(admin, admin_id, role="user")))["role"] == "user"
    await error_of(await admin.get("/api/v1/users"), 403)
    error = await error_of(await patch_user(carol, carol_id, disabled=True), 409)
    assert "carol is the last enabled administrator" in error["message"]
    # A disabled admin does not count.
    await ok_json(await patch_user(carol, admin_id, role="admin", disabled=True))
    await error_of(await patch_user(carol, carol_id, role="user"), 409)


async def test_a_user_manager_who_is_not_admin_cannot_hand_out_power(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    app = admin.server.app
    bob_id = str(await add_user(app, *BOB))
    await add_user(app, *CAROL, permissions=frozenset({Permission.MANAGE_USERS}))
    carol = await browser(admin, CAROL)
    admin_id = await user_id(admin, ADMIN[0])

    error = await error_of(await patch_user(carol, bob_id, role="admin"), 403)
    assert "Only an administrator" in error["message"]
    for reserved in ("manage_users", "manage_settings"):
        await error_of(await patch_user(carol, bob_id, permissions=[reserved]), 403)
    for change in ({"disabled": True}, {"permissions": []}, {"role": "user"}):
        await error_of(await patch_user(carol, admin_id, **change), 403)
    await error_of(await carol.delete(f"/api/v1/users/{admin_id}/sessions"), 403)
    await ok_json(await admin.get("/api/v1/auth/me"))
    bob = await ok_json(await admin.get(f"/api/v1/users/{bob_id}"))
    assert bob["role"] == "user" and "manage_users" not in bob["permissions"]

    # What is not reserved, a manager may change.
    changed = await ok_json(await patch_user(carol, bob_id, permissions=["auto_approve"]))
    assert changed["permissions"] == ["auto_approve"]

    # Their page offers no role and locks the reserved boxes; saving keeps what was granted.
    await ok_json(await patch_user(admin, bob_id, permissions=["manage_settings"]))
    html = await page(carol, f"/admin/users/{bob_id}")
    assert 'name="role"' not in html
    assert re.search(r'value="manage_settings" checked disabled', html)
    form = [("permissions", "youtube"), ("permissions", "manage_users")]
    resp = await carol.post(f"/admin/users/{bob_id}", data=form, allow_redirects=False)
    assert resp.status == 303
    bob = await ok_json(await admin.get(f"/api/v1/users/{bob_id}"))
    assert bob["permissions"] == ["manage_settings", "youtube"]
    # An administrator's page is for reading only.
    await browser(admin, ADMIN)
    html = await page(carol, f"/admin/users/{admin_id}")
    assert "Only an administrator can change" in html
    assert "<tr data-session=" in html and "/revoke" not in html and "/access" not in html


async def test_users_list_pages_and_shows_how_each_signs_in(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    admin = await make_client(sqlite_settings)
    app = admin.server.app
    for n in range(4):
        await add_user(app, f"user{n}", "a long password")
    plex_id, _ = await user_for_identity(
        app[ENGINE], app[BOX], ExternalIdentity("plex", "4242", "plexfan", secret="plex-token")
    )

    seen: list[str] = []
    offset = 0
    while True:
        body = await ok_json(
            await admin.get("/api/v1/users", params={"limit": 2, "offset": offset})
        )
        assert body["total"] == 6 and len(body["users"]) <= 2
        seen.extend(u["username"] for u in body["users"])
        offset += 2
        if offset >= body["total"]:
            break
    assert seen == ["admin", "plexfan", "user0", "user1", "user2", "user3"]
    plexfan = await ok_json(await admin.get(f"/api/v1/users/{plex_id}"))
    assert plexfan["sign_in"] == ["plex"] and "plex-token" not in str(plexfan)
    assert (await ok_json(await admin.get(f"/api/v1/users/{await user_id(admin, 'user0')}")))[
        "sign_in"
    ] == ["local"]

    html = await page(admin, "/admin/users?limit=2&offset=2")
    assert "user0" in html and "user1" in html and "plexfan" not in html
    assert 'href="/admin/users?offset=0&amp;limit=2"' in html
    assert 'href="/admin/users?offset=4&amp;limit=2"' in html
    row = re.search(
        rf'<tr data-user="{plex_id}">(.*?)</tr>', await page(admin, "/admin/users"), re.S
    )
    assert row and "plex" in row.group(1) and "Request films" in row.group(1)


async def test_quotas_are_stored_per_user_and_blank_means_the_default(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    admin = await make_client(sqlite_settings)
    engine = admin.server.app[ENGINE]
    bob_id = await add_user(admin.server.app, *BOB)

    async def stored() -> dict[str, Any]:
        async with engine.connect() as conn:
            return dict((await conn.execute(select(User.quotas).where(User.id == bob_id))).one()[0])

    form = {
        "role": "user",
        "permissions": "request_movies",
        "movies_limit": "10",
        "movies_days": "7",
        "seasons_limit": "",
        "seasons_days": "",
        "downloads_limit": "3",
    }
    resp = await admin.post(f"/admin/users/{bob_id}", data=form, allow_redirects=False)
    assert resp.status == 303
    assert await stored() == {"movies": {"limit": 10, "days": 7}, "downloads": {"limit": 3}}
    html = await page(admin, f"/admin/users/{bob_id}")
    assert 'name="movies_limit" aria-label="Films" value="10"' in html

    # A half-filled or nonsensical quota is refused and changes nothing.
    for bad in (
        {"seasons_limit": "5"},
        {"movies_days": "0"},
        {"downloads_limit": "lots"},
        {"permissions": "fly"},
        {"role": "root"},
    ):
        resp = await admin.post(f"/admin/users/{bob_id}", data=form | bad)
        assert resp.status == 422 and "form-errors" in await resp.text()
    assert await stored() == {"movies": {"limit": 10, "days": 7}, "downloads": {"limit": 3}}

    body = {"quotas": {"seasons": {"limit": 4, "days": 30}}}
    shown = await ok_json(await patch_user(admin, str(bob_id), **body))
    assert shown["quotas"] == {
        "movies": None,
        "seasons": {"limit": 4, "days": 30},
        "downloads": None,
    }
    assert await stored() == {"seasons": {"limit": 4, "days": 30}}
    blank = form | {"movies_limit": "", "movies_days": "", "downloads_limit": ""}
    await admin.post(f"/admin/users/{bob_id}", data=blank)
    assert await stored() == {}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"role": "admin", "colour": "blue"}, 422, "colour"),
        ({"role": "root"}, 422, "role"),
        ({"disabled": "yes"}, 422, "disabled"),
        ({"permissions": "manage_users"}, 422, "permissions"),
        ({"permissions": ["fly"]}, 422, "permissions.0"),
        ({"quotas": {"movies": {"limit": -1, "days": 7}}}, 422, "quotas.movies.limit"),
        ({"quotas": {"movies": {"limit": 1}}}, 422, "quotas.movies.days"),
        ({"quotas": {"films": {"limit": 1, "days": 1}}}, 422, "quotas.films"),
        ([], 422, None),
    ],
)
async def test_bad_user_changes_are_refused_with_the_error_shape(
    sqlite_settings: Settings,
    make_client: MakeClient,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    admin = await make_client(sqlite_settings)
    bob_id = str(await add_user(admin.server.app, *BOB))
    error = await error_of(await admin.patch(f"/api/v1/users/{bob_id}", json=body), status)
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error
    bob = await ok_json(await admin.get(f"/api/v1/users/{bob_id}"))
    assert bob["role"] == "user" and bob["disabled"] is False
    assert await audit(admin, action="user.") == []


async def test_unknown_users_sessions_and_bad_queries_are_4xx(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    admin = await make_client(sqlite_settings)
    nobody = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/api/v1/users/{nobody}"),
        ("GET", "/api/v1/users/not-an-id"),
        ("GET", f"/api/v1/users/{nobody}/sessions"),
        ("DELETE", f"/api/v1/users/{nobody}/sessions"),
        ("DELETE", f"/api/v1/users/{nobody}/sessions/{uuid.uuid4()}"),
        ("POST", f"/admin/users/{nobody}/access"),
    ]:
        resp = await admin.request(method, path, headers={"Accept": "application/json"})
        await error_of(resp, 404)
    await error_of(await patch_user(admin, nobody, disabled=True), 404)
    resp = await admin.patch(
        f"/api/v1/users/{nobody}", data="{", headers={"Content-Type": "application/json"}
    )
    await error_of(resp, 400)
    await page(admin, f"/admin/users/{nobody}", 404)
    for params in ({"limit": "0"}, {"limit": "lots"}, {"offset": "-1"}, {"sort": "name"}):
        await error_of(await admin.get("/api/v1/users", params=params), 422)
    for params in ({"before": "x"}, {"limit": "500"}, {"actor": "a" * 300}, {"who": "me"}):
        await error_of(await admin.get("/api/v1/audit", params=params), 422)


# --- audit log -----------------------------------------------------------------------------


async def test_audit_log_records_sign_ins_permission_and_settings_changes(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings, [("probe", ProbePlugin())])
    bob_id = str(await add_user(admin.server.app, *BOB))
    stranger = await browser(admin)
    resp = await stranger.post(
        "/api/v1/auth/login", json={"username": "bob", "password": "not bob's password"}
    )
    await error_of(resp, 401)
    await browser(admin, BOB)
    await ok_json(await patch_user(admin, bob_id, permissions=["youtube"]))
    secret = "sk-live-0123456789"
    settings = {"url": "http://127.0.0.1:9", "api_key": secret}
    await ok_json(await admin.put("/api/v1/plugins/probe/settings", json=settings))

    entries = await audit(admin)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    newest = [(e["action"], e["actor"], e["target"]) for e in entries[:4]]
    assert newest == [
        ("plugin.settings", "admin", "probe"),
        ("user.update", "admin", "bob"),
        ("sign_in", "bob", None),
        ("sign_in.failed", "bob", None),
    ]
    assert all(e["address"] == "127.0.0.1" for e in entries)
    assert entries[1]["details"] == {"permissions": ["youtube"]}
    assert {"api_key", "url"} <= set(entries[0]["details"]["fields"])
    assert secret not in str(entries) and "not bob's password" not in str(entries)
    assert BOB[1] not in str(entries)

    # Filters: action prefix and actor; both on the page too.
    assert {e["action"] for e in await audit(admin, action="sign_in")} == {
        "sign_in",
        "sign_in.failed",
    }
    assert [e["action"] for e in await audit(admin, actor="BOB")] == ["sign_in", "sign_in.failed"]
    assert await audit(admin, action="sign_in.", actor="admin") == []
    assert await audit(admin, action="%") == []  # a prefix, not a pattern
    html = await page(admin, "/admin/audit?action=user.&actor=")
    assert "user.update" in html and "sign_in" not in html
    assert "youtube" in html and "127.0.0.1" in html
    html = await page(admin, "/admin/audit?actor=bob")
    assert "sign_in.failed" in html and "plugin.settings" not in html
    assert secret not in await page(admin, "/admin/audit")


async def test_signing_out_is_recorded_from_the_page_and_from_the_api(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings)
    await add_user(admin.server.app, *BOB)
    on_page = await browser(admin, BOB)
    resp = await on_page.post("/logout", data={"csrf_token": on_page.csrf}, allow_redirects=False)
    assert resp.status == 303
    through_api = await browser(admin, BOB)
    await ok_json(await through_api.post("/api/v1/auth/logout"))
    assert (await through_api.get("/api/v1/auth/me")).status == 401
    signed_out = await audit(admin, action="sign_out", actor="bob")
    assert [(e["action"], e["address"]) for e in signed_out] == [("sign_out", "127.0.0.1")] * 2


async def test_audit_log_pages_backwards_without_gaps_or_repeats(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    admin = await make_client(sqlite_settings)
    bob_id = str(await add_user(admin.server.app, *BOB))
    for n in range(5):
        await ok_json(await patch_user(admin, bob_id, quotas={"downloads": {"limit": n + 1}}))
    everything = await audit(admin, limit=200)
    assert len(everything) == 6  # a sign-in and five changes

    pages: list[list[int]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = await ok_json(await admin.get("/api/v1/audit", params=params))
        pages.append([e["id"] for e in body["entries"]])
        if body["next_before"] is None:
            break
        params["before"] = body["next_before"]
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [i for p in pages for i in p] == [e["id"] for e in everything]

    html = await page(admin, "/admin/audit?action=user.&limit=2")
    first = re.findall(r'<tr data-entry="(\d+)">', html)
    older = re.search(r'<a href="(/admin/audit\?[^"]+)">Older', html)
    assert older and "action=user." in older.group(1)
    html = await page(admin, older.group(1).replace("&amp;", "&"))
    second = re.findall(r'<tr data-entry="(\d+)">', html)
    assert len(first) == len(second) == 2
    assert [int(i) for i in first + second] == [e["id"] for e in everything[:4]]


# --- plugins' permissions ------------------------------------------------------------------


class GalleryPlugin:
    """A plugin with permissions of its own: one to upload (not a new user's), one to look."""

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return [
            PermissionSpec("gallery_upload", "Upload to the gallery", "Add photos for everyone."),
            PermissionSpec("gallery_view", "See the gallery", "Look at the photos.", default=True),
        ]

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [Route("POST", "/api/v1/gallery/photos", self.upload, access="gallery_upload")]

    async def upload(self) -> dict[str, Any]:
        return {"uploaded": True}


async def stored_permissions(client: Client, uid: str) -> list[str]:
    async with client.server.app[ENGINE].connect() as conn:
        found = await conn.execute(select(User.permissions).where(User.id == uuid.UUID(uid)))
        return sorted(found.scalar_one())


async def test_a_plugins_permissions_are_granted_on_the_users_page_and_the_api(
    sqlite_settings: Settings, make_client: MakeClient, browser: Browser
) -> None:
    admin = await make_client(sqlite_settings, [("gallery", GalleryPlugin())])
    await ok_json(await admin.post("/api/v1/plugins/gallery/enable"))
    bob_id = str(await add_user(admin.server.app, *BOB))
    bob = await browser(admin, BOB)

    # Listed with the core's, with who declares each; a new user has the default ones.
    listed = (await ok_json(await admin.get("/api/v1/permissions")))["permissions"]
    by_name = {p["name"]: p for p in listed}
    assert by_name["gallery_upload"] == {
        "name": "gallery_upload",
        "label": "Upload to the gallery",
        "description": "Add photos for everyone.",
        "default": False,
        "declared_by": "gallery",
    }
    assert by_name["manage_users"]["declared_by"] == "medianest"
    assert "gallery_view" in await stored_permissions(admin, bob_id)
    assert "gallery_upload" not in await stored_permissions(admin, bob_id)

    # The route checks it, naming it by its label.
    refused = await error_of(await bob.post("/api/v1/gallery/photos", json={}), 403)
    assert "“Upload to the gallery”" in refused["message"]

    # The users page offers it, with its description; granting it there lets Bob in.
    html = await page(admin, f"/admin/users/{bob_id}")
    assert 'data-permission="gallery_upload"' in html and "Add photos for everyone." in html
    form = [("permissions", p) for p in ("gallery_upload", "gallery_view", "request_movies")]
    resp = await admin.post(f"/admin/users/{bob_id}", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert await stored_permissions(admin, bob_id) == [
        "gallery_upload",
        "gallery_view",
        "request_movies",
    ]
    assert await ok_json(await bob.post("/api/v1/gallery/photos", json={})) == {"uploaded": True}
    listing = await page(admin, "/admin/users")
    assert "Upload to the gallery" in listing

    # Revoked through the API: refused again at Bob's next request.
    shown = await ok_json(await patch_user(admin, bob_id, permissions=["request_movies"]))
    assert shown["permissions"] == ["request_movies"]
    await error_of(await bob.post("/api/v1/gallery/photos", json={}), 403)
    assert (await audit(admin, action="user.update"))[0]["details"] == {
        "permissions": ["request_movies"]
    }

    # A name nobody declares is refused, saying so, and nothing changes.
    error = await error_of(
        await patch_user(admin, bob_id, permissions=["request_movies", "gallery_delete"]), 422
    )
    assert error["details"] == [
        {
            "field": "permissions.1",
            "message": "no permission is named 'gallery_delete': neither MediaNest nor an "
            "installed plugin declares it",
        }
    ]
    assert await stored_permissions(admin, bob_id) == ["request_movies"]


async def test_a_plugins_permissions_are_shown_only_while_it_is_installed(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    with_gallery = await make_client(sqlite_settings, [("gallery", GalleryPlugin())])
    bob_id = str(await add_user(with_gallery.server.app, *BOB))
    await ok_json(
        await patch_user(with_gallery, bob_id, permissions=["gallery_upload", "request_tv"])
    )

    # The same database, served by a MediaNest without the plugin.
    without = await make_client(sqlite_settings)
    html = await page(without, f"/admin/users/{bob_id}")
    assert "gallery_upload" not in html and "Upload to the gallery" not in html
    assert "Upload to the gallery" not in await page(without, "/admin/users")
    bob = await ok_json(await without.get(f"/api/v1/users/{bob_id}"))
    assert bob["permissions"] == ["request_tv"]
    listed = (await ok_json(await without.get("/api/v1/permissions")))["permissions"]
    assert "gallery_upload" not in {p["name"] for p in listed}
    await error_of(await patch_user(without, bob_id, permissions=["gallery_upload"]), 422)
    # Changing what is shown keeps the grant nobody could see: it is there again with the
    # plugin, on the page and through the API.
    await ok_json(await patch_user(without, bob_id, permissions=["request_movies"]))
    assert await stored_permissions(without, bob_id) == ["gallery_upload", "request_movies"]
    form = [("permissions", "request_tv")]
    resp = await without.post(f"/admin/users/{bob_id}", data=form, allow_redirects=False)
    assert resp.status == 303
    assert await stored_permissions(without, bob_id) == ["gallery_upload", "request_tv"]
    bob = await ok_json(await with_gallery.get(f"/api/v1/users/{bob_id}"))
    assert bob["permissions"] == ["gallery_upload", "request_tv"]
    assert re.search(
        r'value="gallery_upload" checked', await page(with_gallery, f"/admin/users/{bob_id}")
    )


async def test_a_plugin_cannot_take_another_ones_permission(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    class Thief:
        @hookimpl
        def register_permissions(self) -> list[PermissionSpec]:
            return [
                PermissionSpec("manage_users", "Manage everything"),
                PermissionSpec("gallery_upload", "Mine now"),
            ]

        @hookimpl
        def register_routes(self) -> list[Route]:
            return [Route("GET", "/api/v1/thief/loot", lambda: {}, access="loot")]

    admin = await make_client(sqlite_settings, [("gallery", GalleryPlugin()), ("thief", Thief())])
    listed = (await ok_json(await admin.get("/api/v1/permissions")))["permissions"]
    owners = {(p["name"], p["declared_by"]) for p in listed}
    assert ("manage_users", "medianest") in owners and ("gallery_upload", "gallery") in owners
    assert [p["label"] for p in listed if p["name"] == "manage_users"] == ["Manage users"]
    thief = next(
        p
        for p in (await ok_json(await admin.get("/api/v1/plugins")))["plugins"]
        if p["name"] == "thief"
    )
    assert "already medianest's" in thief["hook_errors"]["register_permissions"]
    assert "'loot'" in thief["hook_errors"]["register_routes"]


# --- two processes -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_admin_on_one_process_cuts_off_a_user_on_another(
    tmp_path: Path, pg_url: str, redis_url: str, make_client: MakeClient, browser: Browser
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        redis_url=redis_url,
        rate_limit_sign_in=SIGN_INS,
    )
    app_a = await make_client(settings)
    app_b = await make_client(settings, sign_in=False)
    bob_id = str(await add_user(app_a.server.app, *BOB))
    bob = await browser(app_b, BOB)
    script = await browser(app_b)
    token = (await ok_json(await bob.post("/api/v1/tokens", json={"name": "t"}), 201))["token"]
    await ok_json(await bob.get("/api/v1/auth/me"))  # cached on B now
    await page(bob, "/admin/plugins", 403)

    # A permission granted on A applies on B at the next request, and so does its removal.
    await ok_json(await patch_user(app_a, bob_id, permissions=["manage_settings"]))
    await page(bob, "/admin/plugins")
    await ok_json(await script.get("/api/v1/plugins", headers=bearer(token)))
    await ok_json(await patch_user(app_a, bob_id, permissions=[]))
    await page(bob, "/admin/plugins", 403)
    await error_of(await script.get("/api/v1/plugins", headers=bearer(token)), 403)

    # A session revoked on A is refused on B.
    session = await current_session(bob)
    resp = await app_a.delete(f"/api/v1/users/{bob_id}/sessions/{session['id']}")
    assert await ok_json(resp) == {"revoked": 1}
    await error_of(await bob.get("/api/v1/auth/me"), 401)

    # A user disabled on A is refused on B, by cookie and by token.
    await bob.sign_in(*BOB)
    await ok_json(await bob.get("/api/v1/auth/me"))
    await ok_json(await script.get("/api/v1/auth/me", headers=bearer(token)))
    await ok_json(await patch_user(app_a, bob_id, disabled=True))
    await error_of(await bob.get("/api/v1/auth/me"), 401)
    await error_of(await script.get("/api/v1/auth/me", headers=bearer(token)), 401)
    resp = await bob.get("/account", allow_redirects=False)
    assert resp.status == 303
