"""The ``medianest`` command, run as an operator runs it: real processes in a fresh folder."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from conftest import free_port, wait_for
from sqlalchemy import inspect
from tables import TABLES

from medianest import __version__
from medianest.core import db
from medianest.core.settings import load_settings

BUILT_IN = ["arr", "plex", "tautulli", "tmdb", "youtube"]
SCRIPT = Path(sys.executable).with_name("medianest")


def medianest(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m medianest ARGS`` in ``cwd`` with the test's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "medianest", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("medianest: ")


def sqlite_tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    # SQLite's own tables (the planner's statistics, sqlite_stat1) are not MediaNest's schema.
    return {name for (name,) in rows if not name.startswith("sqlite_")} - {"alembic_version"}


# --- help -------------------------------------------------------------------------------


HELP = {
    "": "serve",
    "serve": "--port",
    "migrate": "--downgrade",
    "check-config": "Validate the settings",
    "plugins": "enable",
    "plugins list": "whether it is enabled",
    "plugins enable": "NAME",
    "plugins disable": "NAME",
    "create-admin": "--password-stdin",
    "backup": "--keep-weekly",
    "restore": "--force",
}


def test_help_of_every_command(tmp_path: Path) -> None:
    # Started together: each is a full interpreter start-up.
    running = {
        command: subprocess.Popen(
            [sys.executable, "-m", "medianest", *command.split(), "--help"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in HELP
    }
    for command, process in running.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, f"medianest {command} --help: {stderr}"
        assert stdout.startswith("Usage: "), command
        assert HELP[command] in stdout, f"medianest {command} --help: {stdout}"
    # Asking for help touches nothing.
    assert list(tmp_path.iterdir()) == []


def test_installed_console_script(tmp_path: Path) -> None:
    assert SCRIPT.exists(), f"the console script is not installed next to {sys.executable}"
    result = subprocess.run(
        [str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "check-config", "plugins"):
        assert command in result.stdout
    version = subprocess.run(
        [str(SCRIPT), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"medianest, version {__version__}"


# --- check-config -----------------------------------------------------------------------


def test_check_config_on_an_unsupported_database(tmp_path: Path) -> None:
    result = medianest("check-config", cwd=tmp_path, env={"MEDIANEST_DATABASE_URL": "mysql://x"})
    assert result.returncode == 2
    assert_clean_failure(result)
    assert "the configuration is not valid" in result.stderr
    assert "MEDIANEST_DATABASE_URL: unsupported scheme 'mysql'" in result.stderr
    assert not (tmp_path / "data").exists()


def test_check_config_lists_every_bad_value(tmp_path: Path) -> None:
    config = tmp_path / "medianest.toml"
    config.write_text('[medianest]\nport = 70000\nredis_url = "http://cache"\n')
    result = medianest("--config", str(config), "check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert_clean_failure(result)
    assert "MEDIANEST_PORT:" in result.stderr
    assert "MEDIANEST_REDIS_URL: unsupported scheme 'http'" in result.stderr


def test_check_config_on_a_missing_config_file(tmp_path: Path) -> None:
    result = medianest("check-config", cwd=tmp_path, env={"MEDIANEST_CONFIG": "nowhere.toml"})
    assert result.returncode == 2
    assert_clean_failure(result)
    assert "MEDIANEST_CONFIG: config file 'nowhere.toml' does not exist" in result.stderr


def test_check_config_on_a_new_installation(tmp_path: Path) -> None:
    result = medianest("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "settings are valid" in result.stdout
    assert "new and empty" in result.stdout


def test_check_config_reports_an_unreachable_redis(tmp_path: Path) -> None:
    env = {"MEDIANEST_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert medianest("migrate", cwd=tmp_path).returncode == 0
    result = medianest("check-config", cwd=tmp_path, env=env)
    assert_clean_failure(result)
    assert "could not reach a service" in result.stderr
    assert "schema current" in result.stdout


def test_check_config_reports_a_missing_postgresql_database(tmp_path: Path, pg_url: str) -> None:
    missing = f"{pg_url}_missing"
    result = medianest("check-config", cwd=tmp_path, env={"MEDIANEST_DATABASE_URL": missing})
    assert_clean_failure(result)
    assert f'database "{missing.rsplit("/", 1)[1]}" does not exist' in result.stderr


# --- migrate ----------------------------------------------------------------------------


def test_migrate_up_and_down_on_sqlite(tmp_path: Path) -> None:
    result = medianest("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    head = db.head_revision()
    assert f"database schema at revision {head}" in result.stdout
    database = tmp_path / "data" / "medianest.db"
    assert sqlite_tables(database) == TABLES

    result = medianest("migrate", "--downgrade", "base", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database schema at revision base" in result.stdout
    assert sqlite_tables(database) == set()

    # check-config now says what to do.
    check = medianest("check-config", cwd=tmp_path)
    assert_clean_failure(check)
    assert "`medianest migrate`" in check.stderr


def test_migrate_takes_each_plugins_tables_up_and_down(tmp_path: Path) -> None:
    result = medianest("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tables of plugin youtube at revision youtube_0001 (newest: youtube_0001)" in (
        result.stdout
    )
    database = tmp_path / "data" / "medianest.db"

    result = medianest("migrate", "--downgrade", "youtube@base", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"database schema at revision {db.head_revision()}" in result.stdout
    assert "tables of plugin youtube at revision base (newest: youtube_0001)" in result.stdout
    assert sqlite_tables(database) == TABLES - {"youtube_downloads"}
    check = medianest("check-config", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "plugin youtube: its tables are not created yet" in check.stdout

    assert medianest("migrate", cwd=tmp_path).returncode == 0
    assert sqlite_tables(database) == TABLES
    check = medianest("check-config", cwd=tmp_path)
    assert check.returncode == 0 and "youtube" not in check.stdout + check.stderr


async def _pg_tables(url: str) -> set[str]:
    engine = db.create_engine(load_settings(database_url=url))
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def test_migrate_up_and_down_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    env = {"MEDIANEST_DATABASE_URL": pg_url}
    result = medianest("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert await _pg_tables(pg_url) == TABLES
    result = medianest("migrate", "--downgrade", "base", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert await _pg_tables(pg_url) == set()
    # Nothing was written in the working folder: the database is elsewhere.
    assert not (tmp_path / "data" / "medianest.db").exists()


# --- plugins ----------------------------------------------------------------------------


def plugin_states(output: str) -> dict[str, str]:
    """The built-in plugins' states (other installed plugins may be listed too)."""
    states = {line.split()[0]: line.split()[1] for line in output.splitlines() if line.strip()}
    assert set(BUILT_IN) <= set(states), output
    return {name: state for name, state in states.items() if name in BUILT_IN}


def test_plugins_list_enable_disable(tmp_path: Path) -> None:
    listed = medianest("plugins", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert plugin_states(listed.stdout) == dict.fromkeys(BUILT_IN, "disabled")
    assert "Plex Media Server" in listed.stdout  # each comes with its description

    enabled = medianest("plugins", "enable", "plex", cwd=tmp_path)
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.strip() == "plex enabled"
    after = plugin_states(medianest("plugins", "list", cwd=tmp_path).stdout)
    assert after == {**dict.fromkeys(BUILT_IN, "disabled"), "plex": "enabled"}

    disabled = medianest("plugins", "disable", "plex", cwd=tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    again = plugin_states(medianest("plugins", "list", cwd=tmp_path).stdout)
    assert again == dict.fromkeys(BUILT_IN, "disabled")

    # Each change is in the audit log, attributed to the command line.
    with closing(sqlite3.connect(tmp_path / "data" / "medianest.db")) as conn:
        rows = conn.execute("SELECT actor, target FROM audit_log ORDER BY id").fetchall()
    assert rows == [("cli", "plex"), ("cli", "plex")]


def test_unknown_plugin_is_a_clear_error(tmp_path: Path) -> None:
    result = medianest("plugins", "enable", "plexx", cwd=tmp_path)
    assert_clean_failure(result)
    assert "no plugin named 'plexx'; installed: " in result.stderr
    installed = result.stderr.split("installed: ", 1)[1].strip().split(", ")
    assert set(BUILT_IN) <= set(installed)
    assert installed == sorted(installed)


# --- serve ------------------------------------------------------------------------------


async def _healthy(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            return response.status == 200 and (await response.json())["status"] == "ok"
    except aiohttp.ClientError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_serve_in_an_empty_folder(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def up() -> bool:
            if process.returncode is not None:
                out, err = await process.communicate()
                raise AssertionError(f"serve exited early: {out.decode()}{err.decode()}")
            return await _healthy(port)

        await wait_for(up, seconds=30)
        database = tmp_path / "data" / "medianest.db"
        assert sqlite_tables(database) == TABLES
        key = tmp_path / "data" / "secret.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert len(key.read_text().strip()) >= 32

        process.send_signal(stop)
        async with asyncio.timeout(20):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"on http://127.0.0.1:{port}/" in stdout
    assert not await _healthy(port)
    # A clean stop checkpoints the write-ahead log back into the database file.
    assert not (tmp_path / "data" / "medianest.db-wal").exists()


def _make_behind(tmp_path: Path) -> None:
    assert medianest("migrate", cwd=tmp_path).returncode == 0
    assert medianest("migrate", "--downgrade", "base", cwd=tmp_path).returncode == 0


def test_serve_refuses_a_database_that_is_behind(tmp_path: Path) -> None:
    _make_behind(tmp_path)
    port = free_port()
    result = medianest("serve", "--port", str(port), cwd=tmp_path, timeout=30)
    assert_clean_failure(result)
    assert "Run `medianest migrate` to upgrade it" in result.stderr
    assert sqlite_tables(tmp_path / "data" / "medianest.db") == set()


def test_serve_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    assert medianest("migrate", cwd=tmp_path).returncode == 0
    with closing(sqlite3.connect(tmp_path / "data" / "medianest.db")) as conn, conn:
        # Every branch's row (the core's and each plugin's) replaced by one unknown revision.
        conn.execute("DELETE FROM alembic_version")
        conn.execute("INSERT INTO alembic_version VALUES ('9999_newer')")
    result = medianest("serve", "--port", str(free_port()), cwd=tmp_path, timeout=30)
    assert_clean_failure(result)
    assert "'9999_newer'" in result.stderr and "newer MediaNest" in result.stderr
    assert "medianest migrate" not in result.stderr


def test_serve_with_an_unreachable_redis(tmp_path: Path) -> None:
    env = {"MEDIANEST_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = medianest("serve", "--port", str(free_port()), cwd=tmp_path, env=env, timeout=30)
    assert_clean_failure(result)
    assert "could not start" in result.stderr and "connecting to 127.0.0.1" in result.stderr


def test_serve_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = medianest("serve", "--port", str(port), cwd=tmp_path, timeout=30)
    assert_clean_failure(result)
    assert "could not start" in result.stderr and "address already in use" in result.stderr


# --- create-admin ---------------------------------------------------------------------------


def _users(database: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT username, role, password_hash FROM users").fetchall()


async def test_create_admin_who_then_signs_in(tmp_path: Path) -> None:
    created = medianest(
        "create-admin",
        "--username",
        "ops",
        "--password-stdin",
        cwd=tmp_path,
        stdin="a long enough secret\n",
    )
    assert created.returncode == 0, created.stderr
    assert "administrator 'ops' created" in created.stdout
    # The password is stored only as an Argon2id hash.
    [(username, role, password_hash)] = _users(tmp_path / "data" / "medianest.db")
    assert (username, role) == ("ops", "admin")
    assert password_hash.startswith("$argon2id$") and "a long enough secret" not in password_hash

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for(lambda: _healthy(port), seconds=30)
        base = f"http://127.0.0.1:{port}"
        # A browser keeps cookies of a numeric host; aiohttp does only when told to.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(f"{base}/api/v1/auth/me") as anonymous:
                assert anonymous.status == 401
            wrong = {"username": "ops", "password": "not the secret"}
            async with session.post(f"{base}/api/v1/auth/login", json=wrong) as refused:
                assert refused.status == 401
            right = {"username": "ops", "password": "a long enough secret"}
            async with session.post(f"{base}/api/v1/auth/login", json=right) as login:
                assert login.status == 200, await login.text()
            async with session.get(f"{base}/api/v1/auth/me") as me:
                assert me.status == 200
                body = await me.json()
            assert (body["username"], body["role"]) == ("ops", "admin")
            async with session.get(f"{base}/api/v1/plugins") as plugins:
                assert plugins.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def test_create_admin_refuses_a_name_taken(tmp_path: Path) -> None:
    first = medianest(
        "create-admin",
        "--username",
        "ops",
        "--password-stdin",
        cwd=tmp_path,
        stdin="a long enough secret\n",
    )
    assert first.returncode == 0, first.stderr
    for name in ("ops", "OPS"):
        again = medianest(
            "create-admin",
            "--username",
            name,
            "--password-stdin",
            cwd=tmp_path,
            stdin="another long secret\n",
        )
        assert again.returncode == 2
        assert_clean_failure(again)
        assert f"a local account named {name!r} already exists" in again.stderr
    # The first account is untouched and still the only one.
    assert [u[:2] for u in _users(tmp_path / "data" / "medianest.db")] == [("ops", "admin")]


def test_create_admin_refuses_a_short_password(tmp_path: Path) -> None:
    result = medianest(
        "create-admin", "--username", "ops", "--password-stdin", cwd=tmp_path, stdin="short\n"
    )
    assert result.returncode == 2
    assert_clean_failure(result)
    assert "the password must have at least 10 characters" in result.stderr
    assert not (tmp_path / "data" / "medianest.db").exists()
