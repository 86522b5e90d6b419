"""Sessions: a new one at every sign-in, sign-out, idle and absolute expiry, and a disabled
user cut off at the next request, against a real app over loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse
from conftest import ADMIN, Client, MakeClient, add_user, wait_for
from sqlalchemy import select, update

from medianest.core.auth import SESSION_COOKIE, hash_token
from medianest.core.keys import ENGINE, SESSIONS, TOKENS
from medianest.core.models import Session, User
from medianest.core.settings import Settings, load_settings

USER = ("viewer", "a viewer's password")


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


def cookie_of(client: Client) -> str | None:
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    return cookies[SESSION_COOKIE].value if SESSION_COOKIE in cookies else None


def set_cookies(response: ClientResponse) -> dict[str, Any]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


async def me_as(client: Client, cookie: str) -> tuple[int, str | None]:
    """What ``/api/v1/auth/me`` answers a browser that sends only this session cookie:
    the status, and the username when signed in."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser,
        browser.get(
            client.make_url("/api/v1/auth/me"), headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
        ) as resp,
    ):
        name = str((await resp.json())["username"]) if resp.status == 200 else None
        return resp.status, name


async def me_with(client: Client, cookie: str) -> int:
    return (await me_as(client, cookie))[0]


async def whoami(client: Client, cookie: str) -> str | None:
    return (await me_as(client, cookie))[1]


async def user_id(client: Client, username: str) -> uuid.UUID:
    async with client.app[ENGINE].connect() as conn:
        found = (await conn.execute(select(User.id).where(User.username == username))).scalar()
    assert found is not None
    return uuid.UUID(str(found))


async def set_session_times(client: Client, cookie: str, **values: datetime) -> None:
    """Change a session's row in the database (and forget the cached copy of it)."""
    async with client.app[ENGINE].begin() as conn:
        owner = (
            await conn.execute(
                update(Session)
                .where(Session.session_token == hash_token(cookie))
                .values(**values)
                .returning(Session.user_id)
            )
        ).scalar()
    assert owner is not None
    await client.app[SESSIONS].forget_cached(uuid.UUID(str(owner)))


# --- a new session at every sign-in ------------------------------------------------------------


async def test_a_cookie_planted_before_sign_in_is_never_the_one_after(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    admin = await make_client(sqlite_settings)
    await add_user(admin.app, *USER)

    # An attacker signs in with their own account and plants that cookie on the victim.
    attacker = new_browser(admin)
    await attacker.sign_in(*USER)
    planted = cookie_of(attacker)
    assert planted is not None
    victim = new_browser(admin)
    victim.session.cookie_jar.update_cookies({SESSION_COOKIE: planted}, admin.make_url("/"))
    # Signing in from that browser (with the token its page carries) ...
    victim.csrf = (await (await victim.get("/api/v1/auth/me")).json())["csrf_token"]
    await victim.sign_in(*ADMIN)
    after = cookie_of(victim)
    assert after is not None and after != planted
    # ... gives a new session: the victim is signed in as themself, and the planted cookie
    # did not become theirs.
    assert await whoami(admin, after) == ADMIN[0]
    assert await whoami(admin, planted) == USER[0]

    # A made-up value is never adopted either.
    made_up = "attacker-chosen-value-0123456789abcdefghijklmnop"
    other = new_browser(admin)
    other.session.cookie_jar.update_cookies({SESSION_COOKIE: made_up}, admin.make_url("/"))
    assert (await other.get("/api/v1/auth/me")).status == 401
    await other.sign_in(*ADMIN)
    assert cookie_of(other) != made_up
    assert await me_with(admin, made_up) == 401


async def test_signing_in_twice_gives_two_sessions(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    first = cookie_of(client)
    await client.sign_in(*ADMIN)
    second = cookie_of(client)
    assert first and second and first != second
    # Long random values, stored only as hashes: a dump of the table signs nobody in.
    assert len(first) >= 43 and len(second) >= 43
    async with client.app[ENGINE].connect() as conn:
        stored = set((await conn.execute(select(Session.session_token))).scalars())
    assert stored == {hash_token(first), hash_token(second)}
    listed = await client.app[SESSIONS].list_for(await user_id(client, ADMIN[0]))
    assert len(listed) == 2
    assert await me_with(client, first) == 200
    assert await me_with(client, second) == 200


async def test_the_session_cookie_is_read_however_the_browser_writes_the_header(
    sqlite_settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(sqlite_settings)
    cookie = cookie_of(client)
    assert cookie is not None

    async def me(header: str) -> int:
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser,
            browser.get(client.make_url("/api/v1/auth/me"), headers={"Cookie": header}) as r,
        ):
            return r.status

    for header in (
        f"theme=dark; {SESSION_COOKIE}={cookie}; medianest_anon=x",
        f'{SESSION_COOKIE}="{cookie}"',
        f"{SESSION_COOKIE} = {cookie}",
        f"x{SESSION_COOKIE}=nothing; {SESSION_COOKIE}={cookie}",
    ):
        assert await me(header) == 200, header
    for header in (f"x{SESSION_COOKIE}={cookie}", f"{SESSION_COOKIE}=", "theme=dark"):
        assert await me(header) == 401, header


# --- sign-out ----------------------------------------------------------------------------------


async def test_signing_out_ends_the_session(
    sqlite_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    client = await make_client(sqlite_settings)
    elsewhere = new_browser(client)
    await elsewhere.sign_in(*ADMIN)

    # With the API.
    cookie = cookie_of(client)
    assert cookie is not None
    assert (await client.post("/api/v1/auth/logout")).status == 200
    assert await me_with(client, cookie) == 401
    # The session of the other browser goes on.
    assert (await elsewhere.get("/api/v1/auth/me")).status == 200

    # With the page's form: refused without the form's token (a forged sign-out), then done.
    await client.sign_in(*ADMIN)
    cookie = cookie_of(client)
    assert cookie is not None
    token = client.csrf
    client.csrf = None
    resp = await client.post("/logout", allow_redirects=False)
    assert resp.status == 403
    assert await me_with(client, cookie) == 200
    resp = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login"
    removed = set_cookies(resp)[SESSION_COOKIE]
    assert removed.value == "" and removed["max-age"] == "0"
    assert await me_with(client, cookie) == 401
    page = await client.get("/", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (303, "/login?next=/")


# --- expiry ------------------------------------------------------------------------------------


async def test_a_session_idle_too_long_ends(
    tmp_path: Path, make_client: MakeClient, db_settings: Settings
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_settings.database_url, session_idle_days=1
    )
    client = await make_client(settings)
    cookie = cookie_of(client)
    assert cookie is not None
    now = datetime.now(UTC)
    # Away for most of the allowed idle time: still signed in, and the visit counts.
    await set_session_times(client, cookie, last_seen_at=now - timedelta(hours=20))
    assert await me_with(client, cookie) == 200
    await set_session_times(client, cookie, last_seen_at=now - timedelta(hours=30))
    assert await me_with(client, cookie) == 401
    resp = await client.get("/admin/plugins", allow_redirects=False)
    assert resp.headers["Location"] == "/login?next=/admin/plugins"


async def test_a_session_idle_for_a_moment_past_a_tiny_limit_ends(
    tmp_path: Path, make_client: MakeClient
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", session_idle_days=1 / 86400)
    client = await make_client(settings)
    cookie = cookie_of(client)
    assert cookie is not None

    async def expired() -> bool:
        return await me_with(client, cookie) == 401

    # Nothing but time passes (a second of it) and the session is over.
    await wait_for(expired, seconds=3)


async def test_a_session_ends_at_its_absolute_expiry_even_when_in_use(
    tmp_path: Path, make_client: MakeClient, db_settings: Settings
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_settings.database_url, session_max_days=30
    )
    client = await make_client(settings)
    cookie = cookie_of(client)
    assert cookie is not None
    async with client.app[ENGINE].connect() as conn:
        created, expires = (
            await conn.execute(
                select(Session.created_at, Session.expires_at).where(
                    Session.session_token == hash_token(cookie)
                )
            )
        ).one()
    assert abs((expires - created) - timedelta(days=30)) < timedelta(seconds=1)

    now = datetime.now(UTC)
    await set_session_times(client, cookie, expires_at=now - timedelta(seconds=1), last_seen_at=now)
    assert await me_with(client, cookie) == 401
    assert (await client.get("/api/v1/dashboard")).status == 401


async def test_the_cookie_lives_as_long_as_the_session_may(
    tmp_path: Path, make_client: MakeClient
) -> None:
    client = await make_client(
        load_settings(data_dir=tmp_path / "data", session_max_days=2), sign_in=False
    )
    await add_user(client.app, *ADMIN, role="admin")
    resp = await client.post(
        "/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
    )
    assert resp.status == 200
    assert set_cookies(resp)[SESSION_COOKIE]["max-age"] == str(2 * 86400)


# --- disabled users ----------------------------------------------------------------------------


async def test_a_disabled_user_is_cut_off_at_the_next_request(
    db_settings: Settings, make_client: MakeClient, new_browser: Callable[[Client], Client]
) -> None:
    admin = await make_client(db_settings)
    viewer_id = await add_user(admin.app, *USER)
    viewer = new_browser(admin)
    await viewer.sign_in(*USER)
    _, token = await admin.app[TOKENS].create(viewer_id, "script")
    bearer = {"Authorization": f"Bearer {token}"}
    script = new_browser(admin)
    assert (await viewer.get("/api/v1/dashboard")).status == 200
    assert (await script.get("/api/v1/dashboard", headers=bearer)).status == 200

    async with admin.app[ENGINE].begin() as conn:
        await conn.execute(update(User).where(User.id == viewer_id).values(disabled=True))
    await admin.app[SESSIONS].forget_cached(viewer_id)
    await admin.app[TOKENS].forget_cached(viewer_id)

    assert (await viewer.get("/api/v1/dashboard")).status == 401
    resp = await viewer.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login?next=/")
    assert (await script.get("/api/v1/dashboard", headers=bearer)).status == 401
    # Nor can they sign in again, with the right password.
    resp = await new_browser(admin).post(
        "/api/v1/auth/login", json={"username": USER[0], "password": USER[1]}
    )
    assert resp.status == 401
    # The admin is not affected.
    assert (await admin.get("/api/v1/dashboard")).status == 200
