"""Secrets at rest and in flight: no secret in clear in the database (the SQLite file, a
PostgreSQL dump), an API answer, a page, an error or a log line; and the key that encrypts them
can be rotated while MediaNest runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from conftest import ADMIN, Client, MakeClient, add_user, require, wait_for
from plugins_for_tests import ProbePlugin
from pydantic import BaseModel, Field, SecretStr
from servers import Servers
from sqlalchemy import select, update

from medianest import PluginContext, Route, Widget, hookimpl
from medianest.core import db
from medianest.core.auth import ExternalIdentity, identity_binding, user_for_identity
from medianest.core.crypto import SecretBox, generate_key, key_id, write_keyring
from medianest.core.keys import BOX, ENGINE, TOKENS
from medianest.core.models import (
    ApiToken,
    AuditLog,
    PluginState,
    Session,
    User,
    UserIdentity,
)
from medianest.core.plugins import secret_binding
from medianest.core.settings import Settings, key_file, load_settings
from medianest.testing import FakePlexMediaServer, FakeTMDB

MASK = "••••"
UNREADABLE = "its secrets cannot be decrypted with the current keys"


def new_secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(12)}"


@dataclass
class AnyKeyTMDB(FakeTMDB):
    """The fake TMDB, taking any key: TMDB tries a key before it is saved, and these tests are
    about how keys are kept, not about TMDB."""

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self._any_key)
        return app

    @web.middleware
    async def _any_key(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if "api_key" in request.query:
            request = request.clone(rel_url=request.rel_url.update_query(api_key=self.api_key))
        return await handler(request)


@pytest.fixture
async def tmdb_url() -> AsyncIterator[str]:
    async with AnyKeyTMDB() as tmdb:
        yield tmdb.url


@dataclass
class AnyTokenPlex(FakePlexMediaServer):
    """The fake Plex Media Server, taking any token, for the same reason as AnyKeyTMDB."""

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self._any_token)
        return app

    @web.middleware
    async def _any_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("X-Plex-Token"):
            request = request.clone(headers={**request.headers, "X-Plex-Token": "accepted"})
        return await handler(request)


@pytest.fixture
async def plex_url() -> AsyncIterator[str]:
    async with AnyTokenPlex(tokens={"accepted"}) as plex:
        yield plex.url + "/"


async def medianest(
    *args: str, data_dir: Path, stdin: str = "", **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run the ``medianest`` command on the installation in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env["MEDIANEST_DATA_DIR"] = str(data_dir)
    env.update({f"MEDIANEST_{k.upper()}": v for k, v in settings.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "medianest",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return subprocess.CompletedProcess(list(args), process.returncode, out.decode(), err.decode())


def cli_settings(settings: Settings) -> dict[str, str]:
    """The ``medianest`` command's settings for the database of ``settings``."""
    return {} if settings.is_sqlite else {"database_url": settings.database_url}


def read_keyring(settings: Settings) -> list[str]:
    return key_file(settings).read_text().split()


async def stored_settings(client: Client, name: str) -> dict[str, Any]:
    async with client.app[ENGINE].connect() as conn:
        value = (
            await conn.execute(select(PluginState.settings).where(PluginState.name == name))
        ).scalar()
    return dict(value or {})


async def put_settings(client: Client, name: str, values: dict[str, Any]) -> dict[str, Any]:
    resp = await client.put(f"/api/v1/plugins/{name}/settings", json=values)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def plugin(client: Client, name: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/plugins/{name}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def enable(client: Client, name: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/plugins/{name}/enable")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def session_cookie(client: Client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["medianest_session"].value


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def database_dump(settings: Settings) -> bytes:
    """Everything the database holds, as an attacker with a copy of it would read it."""
    if settings.is_sqlite:
        path = settings.sqlite_path
        assert path is not None
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    require(shutil.which("pg_dump"), "pg_dump is not installed (apt-get install postgresql-client)")
    url = settings.database_url.replace("+asyncpg", "")
    done = subprocess.run(["pg_dump", "--no-owner", url], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


# --- plugins that fail, quoting their settings -------------------------------------------------


class LeakySettings(BaseModel):
    """A URL and a token."""

    url: str = Field(default="http://service.invalid", title="URL")
    token: SecretStr | None = Field(default=None, title="Token")


class LeakyPlugin:
    """Leaky: every failure message quotes the plugin's settings."""

    def __init__(self, name: str, *, fail_to_start: bool) -> None:
        self.name = name
        self.fail_to_start = fail_to_start

    @hookimpl
    def register_settings_model(self) -> type[BaseModel]:
        return LeakySettings

    @hookimpl
    def activate(self, plugin: PluginContext) -> None:
        if self.fail_to_start:
            raise ConnectionError(f"cannot reach the service with {plugin.settings!r}")

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [
            Route("GET", f"/api/v1/{self.name}/boom", self.boom),
            Route("GET", f"/{self.name}/page", self.boom, include_in_schema=False),
        ]

    @hookimpl
    def register_widgets(self) -> list[Widget]:
        return [Widget("status", "Leaky status", "probe_widget.html", load=self.boom)]

    async def boom(self, plugin: PluginContext) -> None:
        raise RuntimeError(f"the service refused {plugin.settings!r}")


LEAKY = [
    ("leakystart", LeakyPlugin("leakystart", fail_to_start=True)),
    ("leaky", LeakyPlugin("leaky", fail_to_start=False)),
]


# --- a journey that stores one of every kind of secret ----------------------------------------


async def store_every_kind_of_secret(
    client: Client, tmdb_url: str, plex_url: str
) -> dict[str, str]:
    """Save services' keys, sign in, make an API token, a local user and a Plex identity.

    Returns every secret involved, by what it is.
    """
    app = client.app
    found = {
        "admin password": ADMIN[1],
        "admin session cookie": session_cookie(client),
        "TMDB API key": new_secret("tmdbkey"),
        "Plex server token": new_secret("plexserver"),
        "leaky token": new_secret("leakytoken"),
        "failing plugin token": new_secret("startfail"),
        "local user password": new_secret("carolpw"),
        "wrong password": new_secret("guess"),
        "Plex user token": new_secret("plexuser"),
    }
    body = await put_settings(
        client,
        "tmdb",
        {"api_key": found["TMDB API key"], "language": "fr-FR", "api_url": tmdb_url},
    )
    assert body["settings"]["api_key"] == MASK
    await put_settings(client, "plex", {"url": plex_url, "token": found["Plex server token"]})
    await put_settings(client, "leaky", {"token": found["leaky token"]})
    await put_settings(client, "leakystart", {"token": found["failing plugin token"]})
    assert (await enable(client, "tmdb"))["status"] == "active"
    assert (await enable(client, "leaky"))["status"] == "active"
    failed = await enable(client, "leakystart")
    assert failed["status"] == "failed"
    assert "SecretStr('**********')" in failed["error"]

    me = await (await client.get("/api/v1/auth/me")).json()
    _, raw = await app[TOKENS].create(uuid.UUID(me["id"]), "backup script")
    found["API token"] = raw
    async with aiohttp.ClientSession() as script:
        resp = await script.get(
            client.make_url("/api/v1/auth/me"), headers={"Authorization": f"Bearer {raw}"}
        )
        assert resp.status == 200
        assert (await resp.json())["username"] == ADMIN[0]

    await add_user(app, "carol", found["local user password"])
    async with aiohttp.ClientSession() as browser:
        login = client.make_url("/api/v1/auth/login")
        resp = await browser.post(
            login, json={"username": "carol", "password": found["wrong password"]}
        )
        assert resp.status == 401
        resp = await browser.post(
            login, json={"username": "carol", "password": found["local user password"]}
        )
        assert resp.status == 200, await resp.text()
        found["local user session cookie"] = resp.cookies["medianest_session"].value

    await user_for_identity(
        app[ENGINE],
        app[BOX],
        ExternalIdentity(
            provider="plex",
            subject="4242",
            username="plexfan",
            email="fan@example.org",
            secret=found["Plex user token"],
        ),
    )
    return found


def assert_nowhere(found: dict[str, str], text: str | bytes, where: str) -> None:
    haystack = text if isinstance(text, bytes) else text.encode()
    leaked = [what for what, value in found.items() if value.encode() in haystack]
    assert not leaked, f"in clear in {where}: {', '.join(leaked)}"


async def test_a_database_dump_holds_no_secret_in_clear(
    db_settings: Settings, make_client: MakeClient, tmdb_url: str, plex_url: str
) -> None:
    client = await make_client(db_settings, LEAKY)
    found = await store_every_kind_of_secret(client, tmdb_url, plex_url)

    dump = database_dump(db_settings)
    # The dump is the real thing: what is not secret is there to read.
    for visible in (b"fr-FR", b"carol", b"plexfan", b"backup script", plex_url.encode()):
        assert visible in dump
    assert dump.count(b"enc:v1:" + client.app[BOX].current_id.encode()) >= 5
    assert_nowhere(found, dump, f"the {'SQLite file' if db_settings.is_sqlite else 'pg_dump'}")

    # Session and API tokens are stored as SHA-256 hashes, passwords as Argon2id.
    async with client.app[ENGINE].connect() as conn:
        sessions = set((await conn.execute(select(Session.session_token))).scalars())
        tokens = set((await conn.execute(select(ApiToken.token_hash))).scalars())
        password = (
            await conn.execute(select(User.password_hash).where(User.username == "carol"))
        ).scalar()
        identity = (
            await conn.execute(select(UserIdentity.secret).where(UserIdentity.subject == "4242"))
        ).scalar()
    assert {
        sha256(found["admin session cookie"]),
        sha256(found["local user session cookie"]),
    } <= sessions
    assert tokens == {sha256(found["API token"])}
    assert password is not None and password.startswith("$argon2id$")
    # The Plex token is stored encrypted, bound to its identity.
    box = client.app[BOX]
    assert identity is not None and identity.startswith(f"enc:v1:{box.current_id}:")
    assert (
        box.decrypt(identity, associated=identity_binding("plex", "4242"))
        == (found["Plex user token"])
    )


async def test_no_secret_in_answers_pages_errors_or_logs(
    sqlite_settings: Settings,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    tmdb_url: str,
    plex_url: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(sqlite_settings, LEAKY)
    found = await store_every_kind_of_secret(client, tmdb_url, plex_url)

    # The API shows that a secret is set, never the secret.
    for name, field in [("tmdb", "api_key"), ("plex", "token"), ("leaky", "token")]:
        info = await plugin(client, name)
        assert info["settings"][field] == MASK
    failing = await plugin(client, "leakystart")
    assert failing["settings"]["token"] == MASK
    assert failing["status"] == "failed"
    answers = {
        "GET /api/v1/plugins": client.get("/api/v1/plugins"),
        "GET /api/v1/dashboard": client.get("/api/v1/dashboard"),
        "the dashboard": client.get("/"),
        "the integrations page": client.get("/admin/plugins"),
    }
    for where, request in answers.items():
        resp = await request
        assert resp.status == 200, where
        text = await resp.text()
        assert_nowhere(found, text, where)
        # Failure messages (the failing plugin's, the failing widget's) do reach these pages,
        # with the secret masked.
        assert "**********" in text, where

    # Error pages: a failing route, as JSON and as HTML.
    resp = await client.get("/api/v1/leaky/boom")
    assert resp.status == 500
    assert_nowhere(found, await resp.text(), "an API error")
    resp = await client.get("/leaky/page", headers={"Accept": "text/html"})
    assert resp.status == 500
    assert "text/html" in resp.content_type
    assert_nowhere(found, await resp.text(), "an error page")

    # Refused settings: the secret just typed is not sent back.
    typed = new_secret("typed")
    found["secret typed into a refused form"] = typed
    resp = await client.post(
        "/admin/plugins/plex/settings", data={"url": "not a url", "token": typed}
    )
    assert resp.status == 422
    page = await resp.text()
    assert 'class="form-errors"' in page
    assert_nowhere(found, page, "the refused form")
    resp = await client.put(
        "/api/v1/plugins/plex/settings", json={"url": "not a url", "token": typed}
    )
    assert resp.status == 422
    assert_nowhere(found, await resp.text(), "the refused settings")

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = "\n".join(formatter.format(record) for record in caplog.records)
    # The failures were logged, tracebacks included, with the secrets masked.
    assert "plugin leakystart failed to activate" in lines
    assert "the service refused" in lines
    assert "**********" in lines
    assert_nowhere(found, lines, "the log")


# --- decryption failures ---------------------------------------------------------------------


def flip_a_byte(stored: str) -> str:
    head, sealed = stored.rsplit(":", 1)
    swapped = "B" if sealed[4] == "A" else "A"
    return f"{head}:{sealed[:4]}{swapped}{sealed[5:]}"


@pytest.mark.parametrize("damage", ["tampered value", "key file replaced"])
async def test_a_secret_that_does_not_decrypt_marks_its_plugin_failed(
    sqlite_settings: Settings, make_client: MakeClient, damage: str, tmdb_url: str
) -> None:
    client = await make_client(sqlite_settings)
    key = new_secret("tmdbkey")
    await put_settings(client, "tmdb", {"api_key": key, "language": "de-DE", "api_url": tmdb_url})
    await enable(client, "tmdb")
    await client.close()

    if damage == "tampered value":
        engine = db.create_engine(sqlite_settings)
        try:
            async with engine.begin() as conn:
                stored = (
                    await conn.execute(
                        select(PluginState.settings).where(PluginState.name == "tmdb")
                    )
                ).scalar_one()
                await conn.execute(
                    update(PluginState)
                    .where(PluginState.name == "tmdb")
                    .values(settings=stored | {"api_key": flip_a_byte(stored["api_key"])})
                )
        finally:
            await engine.dispose()
        expected = "does not decrypt with key"
    else:
        write_keyring(key_file(sqlite_settings), [generate_key()])
        expected = "in the keyring"

    client = await make_client(sqlite_settings)
    info = await plugin(client, "tmdb")
    assert info["status"] == "failed"
    assert UNREADABLE in info["error"]
    assert expected in info["error"]
    assert info["settings"] == {
        "api_key": MASK,
        "language": "de-DE",
        "region": "US",
        "discovery_interval": 1800.0,
        "api_url": tmdb_url + "/",
    }
    page = await client.get("/admin/plugins")
    assert page.status == 200
    assert UNREADABLE in await page.text()
    for path in ("/", "/api/v1/dashboard", "/api/v1/plugins/tmdb/health"):
        resp = await client.get(path)
        assert resp.status in (200, 409), path

    # Saving other settings with the mask keeps the damaged value: still failed, no crash.
    retyped = {"language": "it-IT", "api_url": tmdb_url}
    body = await put_settings(client, "tmdb", {"api_key": MASK, **retyped})
    assert body["status"] == "failed"
    assert body["settings"]["language"] == "it-IT"
    # Entering the secret again mends it.
    body = await put_settings(client, "tmdb", {"api_key": key, **retyped})
    assert body["status"] == "active"
    assert body["error"] is None


# --- key rotation ----------------------------------------------------------------------------


async def test_rotation_while_two_processes_run(
    tmp_path: Path, redis_url: str, make_client: MakeClient, tmdb_url: str
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", redis_url=redis_url)
    probe_a, probe_b = ProbePlugin(), ProbePlugin()
    a = await make_client(settings, [("probe", probe_a)])
    b = await make_client(settings, [("probe", probe_b)])  # started before the rotation
    old_keys = read_keyring(settings)
    assert len(old_keys) == 1

    probe_key, tmdb_key, plex_user = (new_secret(k) for k in ("probe", "tmdb", "plexuser"))
    await enable(a, "probe")
    await put_settings(a, "probe", {"url": "http://one", "api_key": probe_key})
    await put_settings(a, "tmdb", {"api_key": tmdb_key, "api_url": tmdb_url})
    await user_for_identity(
        a.app[ENGINE],
        a.app[BOX],
        ExternalIdentity(provider="plex", subject="77", username="pat", secret=plex_user),
    )

    async def b_has(url: str) -> bool:
        return bool(probe_b.activated_with) and probe_b.activated_with[-1].url == url

    await wait_for(lambda: b_has("http://one"))

    done = await medianest("rotate-key", data_dir=settings.data_dir)
    assert done.returncode == 0, done.stderr
    keys = read_keyring(settings)
    new_id = key_id(keys[0])
    assert keys[1:] == old_keys
    assert stat.S_IMODE(key_file(settings).stat().st_mode) == 0o600
    assert f"3 stored secret(s) re-encrypted under key {new_id}" in done.stdout
    assert "--prune" in done.stdout

    # Every secret is now under the new key, and decrypts to what it was.
    box = SecretBox(keys)
    stored_probe = (await stored_settings(a, "probe"))["api_key"]
    stored_tmdb = (await stored_settings(a, "tmdb"))["api_key"]
    async with a.app[ENGINE].connect() as conn:
        stored_identity = (await conn.execute(select(UserIdentity.secret))).scalar()
    for stored, binding, plaintext in [
        (stored_probe, secret_binding("probe", "api_key"), probe_key),
        (stored_tmdb, secret_binding("tmdb", "api_key"), tmdb_key),
        (stored_identity, identity_binding("plex", "77"), plex_user),
    ]:
        assert stored.startswith(f"enc:v1:{new_id}:")
        assert box.decrypt(stored, associated=binding) == plaintext

    # A changes the probe's URL (the form sends the mask back); B, which has never seen the
    # new key, applies the change and decrypts the secret without a restart.
    await put_settings(a, "probe", {"url": "http://two", "api_key": MASK})
    await wait_for(lambda: b_has("http://two"))
    secret = probe_b.activated_with[-1].api_key
    assert secret is not None and secret.get_secret_value() == probe_key
    assert (await plugin(b, "probe"))["status"] == "active"
    # What a running process writes after the rotation is under the new key.
    assert (await stored_settings(a, "probe"))["api_key"].startswith(f"enc:v1:{new_id}:")
    # Pages opened before the rotation still post (their CSRF token was signed by the old key).
    await put_settings(a, "probe", {"url": "http://three", "api_key": MASK})
    await put_settings(b, "probe", {"url": "http://four", "api_key": MASK})
    await wait_for(lambda: b_has("http://four"))

    async def a_has_four() -> bool:
        # B's change reaches A over Redis too; A's restart for it must be over before counting.
        return bool(probe_a.activated_with) and probe_a.activated_with[-1].url == "http://four"

    await wait_for(a_has_four)
    # Saving the form unchanged changes nothing: the secret stays as stored.
    before, starts = await stored_settings(a, "probe"), probe_a.lifecycle.count("activate")
    await put_settings(a, "probe", {"url": "http://four", "api_key": MASK})
    assert await stored_settings(a, "probe") == before
    assert probe_a.lifecycle.count("activate") == starts

    # Nothing needs the old key any more: --prune removes it.
    done = await medianest("rotate-key", "--prune", data_dir=settings.data_dir)
    assert done.returncode == 0, done.stderr
    assert f"removed 1 old key(s) ({key_id(old_keys[0])})" in done.stdout
    assert read_keyring(settings) == keys[:1]
    assert stat.S_IMODE(key_file(settings).stat().st_mode) == 0o600

    # A process started now, with the new key alone, has every secret.
    probe_c = ProbePlugin()
    c = await make_client(settings, [("probe", probe_c)])
    assert (await plugin(c, "probe"))["status"] == "active"
    assert (await plugin(c, "tmdb"))["settings"]["api_key"] == MASK
    secret = probe_c.activated_with[-1].api_key
    assert secret is not None and secret.get_secret_value() == probe_key


async def test_prune_refuses_while_a_secret_needs_an_old_key(
    db_settings: Settings, make_client: MakeClient, tmdb_url: str
) -> None:
    client = await make_client(db_settings)
    tmdb_key, plex_token = new_secret("tmdb"), new_secret("plex")
    await put_settings(client, "tmdb", {"api_key": tmdb_key, "api_url": tmdb_url})
    # A secret saved in clear, as by a MediaNest from before secrets were encrypted.
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            PluginState.__table__.insert().values(
                name="plex", enabled=False, settings={"token": plex_token}
            )
        )
    old = read_keyring(db_settings)
    # A rotation interrupted after its new key was written.
    new = generate_key()
    write_keyring(key_file(db_settings), [new, *old])

    done = await medianest(
        "rotate-key", "--prune", data_dir=db_settings.data_dir, **cli_settings(db_settings)
    )
    assert done.returncode == 1
    assert "1 stored secret(s) still need an older key" in done.stderr
    assert "--reencrypt-only" in done.stderr
    assert read_keyring(db_settings) == [new, *old]

    done = await medianest(
        "rotate-key", "--reencrypt-only", data_dir=db_settings.data_dir, **cli_settings(db_settings)
    )
    assert done.returncode == 0, done.stderr
    assert f"2 stored secret(s) re-encrypted under key {key_id(new)}" in done.stdout
    assert "1 of them were stored in clear" in done.stdout
    assert read_keyring(db_settings) == [new, *old]

    done = await medianest(
        "rotate-key", "--prune", data_dir=db_settings.data_dir, **cli_settings(db_settings)
    )
    assert done.returncode == 0, done.stderr
    assert read_keyring(db_settings) == [new]
    box = SecretBox([new])
    tmdb = (await stored_settings(client, "tmdb"))["api_key"]
    plex = (await stored_settings(client, "plex"))["token"]
    assert box.decrypt(tmdb, associated=secret_binding("tmdb", "api_key")) == tmdb_key
    assert box.decrypt(plex, associated=secret_binding("plex", "token")) == plex_token
    assert_nowhere({"Plex token": plex_token}, database_dump(db_settings), "the database")

    # The rotations are in the audit log.
    async with client.app[ENGINE].connect() as conn:
        actions = (await conn.execute(select(AuditLog.action))).scalars().all()
    assert {"secrets.reencrypt", "secrets.prune"} <= set(actions)


async def test_rotation_with_keys_from_the_environment(
    tmp_path: Path, make_client: MakeClient, tmdb_url: str
) -> None:
    first, second = generate_key(), generate_key()
    data = tmp_path / "data"
    client = await make_client(load_settings(data_dir=data, secret_key=first))
    tmdb_key = new_secret("tmdb")
    await put_settings(client, "tmdb", {"api_key": tmdb_key, "api_url": tmdb_url})
    await enable(client, "tmdb")
    await client.close()

    # The command cannot change the environment: it says how to rotate instead.
    done = await medianest("rotate-key", data_dir=data, secret_key=first)
    assert done.returncode == 1
    assert "MEDIANEST_SECRET_KEY" in done.stderr
    assert "medianest rotate-key --reencrypt-only" in done.stderr
    assert first not in done.stderr
    assert not (data / "secret.key").exists()

    done = await medianest(
        "rotate-key", "--reencrypt-only", data_dir=data, secret_key=f"{second},{first}"
    )
    assert done.returncode == 0, done.stderr
    assert f"1 stored secret(s) re-encrypted under key {key_id(second)}" in done.stdout
    done = await medianest("rotate-key", "--prune", data_dir=data, secret_key=f"{second},{first}")
    assert done.returncode == 0, done.stderr
    assert "remove them from MEDIANEST_SECRET_KEY" in done.stdout
    assert not (data / "secret.key").exists()

    # With the new key alone, the secret decrypts: the integration starts.
    client = await make_client(load_settings(data_dir=data, secret_key=second))
    info = await plugin(client, "tmdb")
    assert info["status"] == "active", info["error"]
    assert info["settings"]["api_key"] == MASK


async def test_rotation_under_a_running_server(tmp_path: Path, tmdb_url: str) -> None:
    """``medianest serve`` keeps working through a rotation and a prune, without a restart."""
    servers = Servers(tmp_path)
    data = tmp_path / "one"
    try:
        server = servers.start("one")
        server.wait_ready()
        made = await medianest(
            "create-admin",
            "--username",
            "root",
            "--password-stdin",
            data_dir=data,
            stdin="a long enough password\n",
        )
        assert made.returncode == 0, made.stderr
        # A jar that keeps cookies of an IP address (the server listens on 127.0.0.1).
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=server.url, cookie_jar=jar) as http:
            resp = await http.post(
                "/api/v1/auth/login",
                json={"username": "root", "password": "a long enough password"},
            )
            assert resp.status == 200, await resp.text()
            csrf = (await (await http.get("/api/v1/auth/me")).json())["csrf_token"]
            headers = {"X-CSRF-Token": csrf}

            async def save(values: dict[str, Any]) -> dict[str, Any]:
                values = {**values, "api_url": tmdb_url}
                resp = await http.put("/api/v1/plugins/tmdb/settings", json=values, headers=headers)
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())

            key = new_secret("tmdb")
            await save({"api_key": key, "language": "de-DE"})
            resp = await http.post("/api/v1/plugins/tmdb/enable", headers=headers)
            assert (await resp.json())["status"] == "active"

            done = await medianest("rotate-key", data_dir=data)
            assert done.returncode == 0, done.stderr
            new_id = key_id((data / "secret.key").read_text().split()[0])

            # A secret saved now is encrypted under the new key, although this process
            # started with the old one and has not met the new one yet.
            second = new_secret("tmdb")
            body = await save({"api_key": second, "language": "it-IT"})
            assert body["status"] == "active", body["error"]
            assert body["settings"] == {
                "api_key": MASK,
                "language": "it-IT",
                "region": "US",
                "discovery_interval": 1800.0,
                "api_url": tmdb_url + "/",
            }
            with closing(sqlite3.connect(data / "medianest.db")) as conn:
                (raw,) = conn.execute(
                    "SELECT settings FROM plugin_states WHERE name = 'tmdb'"
                ).fetchone()
            assert f'"enc:v1:{new_id}:' in raw
            assert second not in raw

            # So the old key can go at once, and the server goes on with the new one alone.
            done = await medianest("rotate-key", "--prune", data_dir=data)
            assert done.returncode == 0, done.stderr
            body = await save({"api_key": MASK, "language": "es-ES"})
            assert body["status"] == "active", body["error"]
            info = await (await http.get("/api/v1/plugins/tmdb")).json()
            assert info["status"] == "active"
            assert info["settings"] == {
                "api_key": MASK,
                "language": "es-ES",
                "region": "US",
                "discovery_interval": 1800.0,
                "api_url": tmdb_url + "/",
            }
        assert server.process.poll() is None
        assert "Traceback" not in server.output()
        assert key not in server.output() and second not in server.output()
    finally:
        servers.stop_all()
