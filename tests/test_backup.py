"""Backups: `medianest backup`, `medianest restore` and `medianest backup --verify`, run as an
operator runs them, on a real SQLite file and a real PostgreSQL database, while a server
writes."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import pty
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ADMIN,
    PG_ENV,
    Client,
    MakeClient,
    _pg_admin,
    completed_download,
    require,
    wait_for,
)
from medianest_plugins.youtube.models import YouTubeDownload
from request_world import FILM, FRIEND, PLEX_TOKEN, SERIES, patch_intervals, world
from sqlalchemy import inspect, select, text

from medianest.core import db
from medianest.core.crypto import SecretBox
from medianest.core.models import ApiToken, PluginState, User
from medianest.core.plugins import secret_binding
from medianest.core.settings import Settings, key_file, load_keyring, load_settings
from medianest.ops import backup
from medianest.requests.models import Approval, MediaRequest, RequestSeason

OTHER_FILM = 693134  # Dune: Part Two (not in Plex)


# --- helpers ----------------------------------------------------------------------------


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env["MEDIANEST_DATA_DIR"] = str(settings.data_dir)
    env["MEDIANEST_DATABASE_URL"] = settings.database_url
    return {**env, **extra}


async def medianest(*args: str, settings: Settings, **extra: str) -> Result:
    """``python -m medianest ARGS`` as an operator runs it, without blocking the event loop
    (an app of the test keeps serving meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "medianest",
        *args,
        env=cli_env(settings, **extra),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def refused(result: Result, *texts: str) -> None:
    """A failure a user can act on: exit code 1, one message, no traceback."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.stderr.startswith("medianest: "), result.stderr
    for expected in texts:
        assert expected in result.stderr, result.stderr


@pytest.fixture
async def empty_target(db_settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings on a second, empty database of the same kind as ``db_settings``."""
    if db_settings.is_sqlite:
        yield load_settings(data_dir=tmp_path / "restored")
        return
    base = os.environ[PG_ENV]
    name = f"medianest_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(base, f'CREATE DATABASE "{name}"')
    try:
        yield load_settings(
            data_dir=tmp_path / "restored", database_url=f"{base.rsplit('/', 1)[0]}/{name}"
        )
    finally:
        await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _pg_dump_for_postgres(request: pytest.FixtureRequest) -> None:
    if "postgres" in request.node.name:
        require(
            shutil.which("pg_dump"), "pg_dump is not installed (apt-get install postgresql-client)"
        )


async def table_counts(settings: Settings) -> dict[str, int]:
    """Rows in every table of the database, read without MediaNest's backup code."""
    engine = db.create_engine(settings)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            return {
                name: int((await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar_one())
                for name in names
            }
    finally:
        await engine.dispose()


async def query(settings: Settings, statement: Any) -> list[Any]:
    engine = db.create_engine(settings)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(statement)).all()]
    finally:
        await engine.dispose()


async def schema_complete(settings: Settings) -> bool:
    engine = db.create_engine(settings)
    try:
        return (await db.schema_status(engine)).complete
    finally:
        await engine.dispose()


def manifest_of(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return dict(json.load(member))


def database_of(archive: Path) -> tuple[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        info = tar.getmembers()[1]
        member = tar.extractfile(info)
        assert member is not None
        return info.name, member.read()


def write_archive(path: Path, manifest: dict[str, Any], name: str, data: bytes) -> Path:
    """An archive made by hand: validly compressed, with whatever manifest and data."""
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for member, body in (("manifest.json", json.dumps(manifest).encode()), (name, data)):
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


async def untouched(settings: Settings) -> bool:
    """The database was not written: no SQLite file, or no table in PostgreSQL."""
    if settings.is_sqlite:
        assert settings.sqlite_path is not None
        return not settings.sqlite_path.exists()
    return await table_counts(settings) == {}


def run_cli(*args: str, settings: Settings, stdin: str | None = None) -> Result:
    result = subprocess.run(
        [sys.executable, "-m", "medianest", *args],
        env=cli_env(settings),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(result.returncode, result.stdout, result.stderr)


def small_installation(settings: Settings) -> None:
    """An administrator made with ``medianest create-admin`` in a new database."""
    result = run_cli(
        "create-admin",
        "--username",
        ADMIN[0],
        "--password-stdin",
        settings=settings,
        stdin=ADMIN[1] + "\n",
    )
    assert result.returncode == 0, result.stderr


# --- the whole journey ------------------------------------------------------------------


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def test_a_backup_taken_while_the_server_writes_restores_every_request_user_and_secret(
    make_client: MakeClient,
    db_settings: Settings,
    empty_target: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_intervals(monkeypatch)
    settings = load_settings(
        data_dir=db_settings.data_dir,
        database_url=db_settings.database_url,
        request_check_interval=0.3,
        rate_limit_api="100000/minute",
    )
    async with world(make_client, settings) as w:
        answers = []
        for body in (
            {"media_type": "movie", "tmdb_id": FILM},
            {"media_type": "tv", "tmdb_id": SERIES, "seasons": [1, 2]},
            {"media_type": "movie", "tmdb_id": OTHER_FILM},
        ):
            resp = await w.friend.post("/api/v1/requests", json=body)
            assert resp.status == 201, await resp.text()
            answers.append((await resp.json())["request"]["id"])
        film, _, other = answers
        assert (await w.admin.post(f"/api/v1/requests/{film}/approve", json={})).status == 200
        resp = await w.admin.post(
            f"/api/v1/requests/{other}/decline", json={"comment": "Not this one"}
        )
        assert resp.status == 200
        approvals_before = set(await query(settings, select(Approval.id, Approval.status)))
        assert len(approvals_before) >= 5

        # An API client creates tokens, one after another, for as long as the backup runs.
        written: list[str] = []
        stop = asyncio.Event()

        async def write() -> None:
            while not stop.is_set():
                name = f"w{len(written):05d}"
                resp = await w.admin.post("/api/v1/tokens", json={"name": name})
                assert resp.status == 201, await resp.text()
                written.append(name)

        writer = asyncio.create_task(write())
        await wait_for(lambda: _at_least(written, 5))
        at_start = len(written)
        archive = tmp_path / "backups" / "nightly.tar.gz"
        result = await medianest("backup", "--output", str(archive), settings=settings)
        at_end = len(written)
        stop.set()
        await writer
        assert result.returncode == 0, result.stderr
        assert at_end > at_start, "the server wrote nothing while the backup ran"
        # Not on a terminal: no progress, only the result.
        assert result.stderr == ""
        assert result.stdout.startswith(f"backup written to {archive} (")
        approvals_after = set(await query(settings, select(Approval.id, Approval.status)))
        users = set(await query(settings, select(User.id, User.username, User.role)))
        requests = set(
            await query(settings, select(MediaRequest.id, MediaRequest.user_id, MediaRequest.type))
        )
        seasons = set(await query(settings, select(RequestSeason.request_id, RequestSeason.season)))

        manifest = manifest_of(archive)
        assert manifest["schema_revision"] == db.head_revision()
        assert manifest["database"] == ("sqlite" if settings.is_sqlite else "postgresql")
        assert manifest["tables"]["requests"] == 3
        # The key is not in the archive, in any form.
        keys = load_keyring(settings)
        _, data = database_of(archive)
        assert all(key.encode() not in data for key in keys)
        with tarfile.open(archive) as tar:
            names = sorted(tar.getnames())
        assert names == [
            "database.sql" if manifest["database"] == "postgresql" else "database.sqlite3",
            "manifest.json",
        ]

        # Restored where the key was not put back: restored, with a warning naming what is lost.
        result = await medianest("restore", str(archive), settings=empty_target)
        assert result.returncode == 0, result.stderr
        assert "cannot be decrypted: no key is configured" in result.stderr
        assert "plugin tmdb, setting api_key" in result.stderr
        assert not key_file(empty_target).exists()
        # Restoring again over it needs --force.
        refused(
            await medianest("restore", str(archive), settings=empty_target),
            "already holds data",
            "--force",
        )
        # With the key kept apart put back, and --force: no warning.
        key_file(empty_target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(key_file(settings), key_file(empty_target))
        result = await medianest("restore", "--force", str(archive), settings=empty_target)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert f"restored {archive} into " in result.stdout

        # The database is the snapshot the manifest describes, row for row.
        assert await table_counts(empty_target) == manifest["tables"]
        assert set(await query(empty_target, select(User.id, User.username, User.role))) == users
        restored_requests = await query(
            empty_target, select(MediaRequest.id, MediaRequest.user_id, MediaRequest.type)
        )
        assert set(restored_requests) == requests
        assert (
            set(await query(empty_target, select(RequestSeason.request_id, RequestSeason.season)))
            == seasons
        )
        approvals = set(await query(empty_target, select(Approval.id, Approval.status)))
        assert approvals_before <= approvals <= approvals_after
        # Consistent: the tokens written while it ran are a gapless prefix of those written.
        tokens = sorted(n for (n,) in await query(empty_target, select(ApiToken.name)))
        assert tokens == written[: len(tokens)]
        assert at_start <= len(tokens) <= at_end + 1

        # The secrets decrypt with the key that was kept apart.
        box = SecretBox(load_keyring(empty_target, create=False))
        stored = dict(await query(empty_target, select(PluginState.name, PluginState.settings)))
        tmdb_key = stored["tmdb"]["api_key"]
        assert tmdb_key != w.tmdb.api_key
        assert box.decrypt(tmdb_key, associated=secret_binding("tmdb", "api_key")) == (
            w.tmdb.api_key
        )
        plex_token = stored["plex"]["token"]
        assert box.decrypt(plex_token, associated=secret_binding("plex", "token")) == PLEX_TOKEN

        # And a MediaNest on the restored database works: integrations on, requests there.
        restored = await make_client(empty_target)
        plugins = await (await restored.get("/api/v1/plugins")).json()
        states = {p["name"]: p["status"] for p in plugins["plugins"]}
        assert states["tmdb"] == states["arr"] == states["plex"] == "active", states
        friend = Client(restored.server)
        await friend.start_server()
        try:
            await friend.sign_in(*FRIEND)
            mine = await (await friend.get("/api/v1/requests")).json()
        finally:
            await friend.close()
        assert {item["id"] for item in mine["items"]} == {str(r[0]) for r in requests}
        statuses = {item["id"]: item["status"] for item in mine["items"]}
        assert statuses[other] == "declined"


# --- damaged archives -------------------------------------------------------------------


async def test_damaged_archives_are_refused_with_a_message_and_nothing_is_written(
    db_settings: Settings, empty_target: Settings, tmp_path: Path
) -> None:
    await asyncio.to_thread(small_installation, db_settings)
    archive = tmp_path / "good.tar.gz"
    result = await medianest("backup", "-o", str(archive), settings=db_settings)
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(archive)
    name, data = database_of(archive)
    raw = archive.read_bytes()

    result = await medianest("backup", "--verify", str(archive), settings=empty_target)
    assert result.returncode == 0, result.stderr
    assert f"{archive} restores: " in result.stdout
    assert "every table has the row count its manifest records" in result.stdout

    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(flipped))
    (tmp_path / "truncated.tar.gz").write_bytes(raw[: len(raw) * 2 // 3])
    # Validly compressed, but the database is not the one the manifest vouches for.
    altered = bytearray(data)
    altered[len(data) // 2] ^= 0x01
    write_archive(tmp_path / "altered.tar.gz", manifest, name, bytes(altered))
    # Checksums that match, and a row count that does not: only a restore shows it.
    counted = json.loads(json.dumps(manifest))
    counted["tables"]["users"] += 1
    write_archive(tmp_path / "miscounted.tar.gz", counted, name, data)
    (tmp_path / "notes.tar.gz").write_text("not an archive\n")

    cases = {
        "flipped.tar.gz": "is refused",
        "truncated.tar.gz": "is refused: it is damaged or truncated",
        "altered.tar.gz": f"is refused: the checksum of {name} does not match its manifest",
        "miscounted.tar.gz": "the manifest says 2",
        "notes.tar.gz": "is refused",
    }
    # Each refused by restore and by --verify (all at once: they are independent).
    runs = [
        (bad, message, medianest(*command, str(tmp_path / bad), settings=empty_target))
        for bad, message in cases.items()
        for command in (("restore",), ("backup", "--verify"))
    ]
    results = await asyncio.gather(*(run for _, _, run in runs))
    for (bad, message, _), result in zip(runs, results, strict=True):
        assert message in result.stderr, (bad, result.stderr)
        refused(result, message)
    assert await untouched(empty_target)
    # Nothing was left behind by the refused restores.
    assert (
        empty_target.data_dir.exists() is False
        or [p for p in empty_target.data_dir.iterdir() if p.name != "secret.key"] == []
    )

    # The good archive still restores into the same, untouched database.
    result = await medianest("restore", str(archive), settings=empty_target)
    assert result.returncode == 0, result.stderr
    assert await table_counts(empty_target) == manifest["tables"]


# --- schema revisions -------------------------------------------------------------------


async def _youtube_download(settings: Settings) -> tuple[uuid.UUID, uuid.UUID]:
    """A user with a YouTube download of theirs, straight into the database."""
    user_id, download_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    engine = db.create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                User.__table__.insert().values(
                    id=user_id,
                    username="ann",
                    role="user",
                    disabled=False,
                    preferences={},
                    permissions=["youtube"],
                    quotas={},
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                YouTubeDownload.__table__.insert().values(
                    completed_download(download_id, user_id, now)
                )
            )
    finally:
        await engine.dispose()
    return user_id, download_id


async def test_the_plugins_tables_are_backed_up_and_restored(
    db_settings: Settings, empty_target: Settings, tmp_path: Path
) -> None:
    assert (await medianest("migrate", settings=db_settings)).returncode == 0
    _, download_id = await _youtube_download(db_settings)
    archive = tmp_path / "with-plugins.tar.gz"
    assert (await medianest("backup", "-o", str(archive), settings=db_settings)).returncode == 0
    manifest = manifest_of(archive)
    assert manifest["tables"]["youtube_downloads"] == 1
    # Every branch's revision: the core's and each plugin's.
    assert manifest["schema_revision"] == db.head_revision()
    assert {db.head_revision(), "youtube_0001"} <= set(manifest["schema_revisions"])

    result = await medianest("restore", str(archive), settings=empty_target)
    assert result.returncode == 0, result.stderr
    assert "migrated" not in result.stdout
    downloads = await query(
        empty_target, select(YouTubeDownload.id, YouTubeDownload.title, YouTubeDownload.size_kib)
    )
    assert downloads == [(download_id, "A video", 2048)]
    assert await table_counts(empty_target) == manifest["tables"]
    assert await schema_complete(empty_target)


async def test_an_archive_of_the_previous_release_is_restored_with_its_youtube_downloads(
    db_settings: Settings, empty_target: Settings, tmp_path: Path
) -> None:
    """Before plugins had their own migrations the downloads table was the core's (0004) and
    the version table held one revision: restoring adopts the table, rows and grants kept."""
    engine = db.create_engine(db_settings)
    try:
        await db.migrate(engine, "0005", branches=[])
    finally:
        await engine.dispose()
    user_id, download_id = await _youtube_download(db_settings)
    archive = tmp_path / "previous.tar.gz"
    assert (await medianest("backup", "-o", str(archive), settings=db_settings)).returncode == 0
    manifest = manifest_of(archive)
    # As the previous release wrote it: one revision, no list of them.
    del manifest["schema_revisions"]
    assert manifest["schema_revision"] == "0005"
    name, data = database_of(archive)
    manifest["members"] = {name: manifest["members"][name]}
    previous = write_archive(tmp_path / "as-then.tar.gz", manifest, name, data)

    result = await medianest("restore", str(previous), settings=empty_target)
    assert result.returncode == 0, result.stderr
    assert "schema migrated from 0005" in result.stdout
    assert await schema_complete(empty_target)
    downloads = await query(empty_target, select(YouTubeDownload.id, YouTubeDownload.user_id))
    assert downloads == [(download_id, user_id)]
    grants = await query(empty_target, select(User.permissions).where(User.id == user_id))
    assert grants == [(["youtube"],)]


async def test_an_older_archive_is_migrated_and_a_newer_one_refused(
    db_settings: Settings, empty_target: Settings, tmp_path: Path
) -> None:
    assert (await medianest("migrate", settings=db_settings)).returncode == 0
    result = await medianest("migrate", "--downgrade", "0002", settings=db_settings)
    assert result.returncode == 0, result.stderr
    older = tmp_path / "older.tar.gz"
    assert (await medianest("backup", "-o", str(older), settings=db_settings)).returncode == 0
    assert manifest_of(older)["schema_revision"] == "0002"

    result = await medianest("backup", "--verify", str(older), settings=empty_target)
    assert result.returncode == 0, result.stderr
    assert f"its schema migrates from 0002 to {db.head_revision()}" in result.stdout
    result = await medianest("restore", str(older), settings=empty_target)
    assert result.returncode == 0, result.stderr
    assert f"schema migrated from 0002 to {db.head_revision()}" in result.stdout
    # Every branch is at its newest: the core's and each plugin's (youtube's, which depends
    # on the core's 0004, was downgraded with it and is upgraded again).
    assert await schema_complete(empty_target)

    # A database a newer MediaNest upgraded: backed up fine, restored by no older version.
    assert (await medianest("migrate", settings=db_settings)).returncode == 0
    engine = db.create_engine(db_settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM alembic_version"))
            await conn.execute(text("INSERT INTO alembic_version VALUES ('0099_future')"))
    finally:
        await engine.dispose()
    newer = tmp_path / "newer.tar.gz"
    assert (await medianest("backup", "-o", str(newer), settings=db_settings)).returncode == 0
    assert manifest_of(newer)["schema_revision"] == "0099_future"
    message = "'0099_future', which this version of MediaNest"
    fresh = load_settings(data_dir=tmp_path / "fresh") if db_settings.is_sqlite else None
    target = fresh or empty_target
    if not db_settings.is_sqlite:
        # The PostgreSQL target holds the older restore: empty it first.
        await _empty_postgres(target)
    refused(await medianest("restore", str(newer), settings=target), message, "newer MediaNest")
    assert await untouched(target)
    refused(await medianest("backup", "--verify", str(newer), settings=target), message)

    # An archive of one kind of database is not restored into the other.
    other = (
        load_settings(data_dir=tmp_path / "other")
        if not db_settings.is_sqlite
        else load_settings(data_dir=tmp_path / "other", database_url=_postgres_url())
    )
    refused(
        await medianest("restore", str(older), settings=other),
        f"the archive holds a {manifest_of(older)['database']} database",
    )


def _postgres_url() -> str:
    # Never reached: restore refuses before it connects.
    return "postgresql://nobody@127.0.0.1:9/none"


async def _empty_postgres(settings: Settings) -> None:
    engine = db.create_engine(settings)
    try:
        async with engine.begin() as conn:
            for name in await conn.run_sync(lambda c: inspect(c).get_table_names()):
                await conn.execute(text(f'DROP TABLE "{name}" CASCADE'))
    finally:
        await engine.dispose()


# --- pg_dump ----------------------------------------------------------------------------


async def test_a_missing_or_mismatched_pg_dump_is_named(pg_url: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", database_url=pg_url)
    assert (await medianest("migrate", settings=settings)).returncode == 0
    out = tmp_path / "backups"
    empty = tmp_path / "bin-empty"
    empty.mkdir()
    refused(
        await medianest("backup", "-o", str(out), settings=settings, PATH=str(empty)),
        "pg_dump was not found on PATH",
        "postgresql-client-",
    )
    old = tmp_path / "bin-old"
    old.mkdir()
    shim = old / "pg_dump"
    shim.write_text('#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n')
    shim.chmod(0o755)
    result = await medianest(
        "backup", "-o", str(out), settings=settings, PATH=f"{old}:/usr/bin:/bin"
    )
    refused(result, "is of PostgreSQL 9.6.24, the server of PostgreSQL", "client tools")
    assert not out.exists() or list(out.iterdir()) == []


# --- retention --------------------------------------------------------------------------


def test_retention_keeps_the_newest_of_7_days_and_of_4_weeks_before_them(tmp_path: Path) -> None:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    for day in range(61):  # 1 September to 31 October, twice a day
        for hour in (3, 15):
            (tmp_path / backup.archive_name(start + timedelta(days=day, hours=hour))).touch()
    others = ["notes.txt", "medianest-backup-latest.tar.gz", "before-upgrade.tar.gz"]
    for name in others:
        (tmp_path / name).touch()

    removed = backup.prune(tmp_path, keep_daily=7, keep_weekly=4)

    kept = sorted(p.name for p in tmp_path.iterdir() if p.name not in others)
    days = ["0927", "1004", "1011", "1018", *(f"10{d}" for d in range(25, 32))]
    assert kept == [f"medianest-backup-2026{d}T150000Z.tar.gz" for d in days]
    assert len(removed) == 122 - 11
    assert all((tmp_path / name).exists() for name in others)


def test_backup_with_retention_prunes_the_folder(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    small_installation(settings)
    folder = settings.data_dir / "backups"
    folder.mkdir()
    now = datetime.now(UTC)
    for day in range(1, 61):
        (folder / backup.archive_name(now - timedelta(days=day))).touch()
    (folder / "keep-me.txt").touch()

    result = run_cli("backup", "--keep-daily", "7", "--keep-weekly", "4", settings=settings)
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.split("backup written to ", 1)[1].split(" (", 1)[0])
    assert written.parent == folder and written.exists()
    archives = [p for p in folder.iterdir() if backup.archive_time(p.name)]
    # Today's and the 6 days before it, and one of each of the 4 weeks before those.
    assert len(archives) == 11 and written in archives
    assert (folder / "keep-me.txt").exists()
    assert "removed 50 older archive(s)" in result.stdout


# --- progress ---------------------------------------------------------------------------


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``medianest ARGS`` with its standard error on a terminal; return the exit code,
    standard output and what the terminal showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "medianest", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal is closed once the process exits
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=60), out, shown.decode(errors="replace")


async def test_progress_goes_to_a_terminal_only(sqlite_settings: Settings, tmp_path: Path) -> None:
    await asyncio.to_thread(small_installation, sqlite_settings)
    archive = tmp_path / "a.tar.gz"
    code, out, shown = await asyncio.to_thread(
        run_on_terminal, ["backup", "-o", str(archive)], cli_env(sqlite_settings)
    )
    assert code == 0, shown
    assert "counting rows: " in shown and " tables" in shown
    assert "\r" in shown
    assert out.startswith(f"backup written to {archive}")

    code, out, shown = await asyncio.to_thread(
        run_on_terminal, ["backup", "--verify", str(archive)], cli_env(sqlite_settings)
    )
    assert code == 0, shown
    assert "checking: " in shown and " MB" in shown

    # Without a terminal (cron, a pipe): the result only.
    result = await medianest("backup", "-o", str(tmp_path / "b.tar.gz"), settings=sqlite_settings)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1 and "\r" not in result.stdout
    result = await medianest("backup", "--verify", str(archive), settings=sqlite_settings)
    assert result.stderr == "" and "\r" not in result.stdout


def test_backup_with_verify_goes_alone(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "medianest", "backup", "--verify", __file__, "--keep-daily", "3"],
        cwd=tmp_path,
        env=cli_env(load_settings(data_dir=tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("medianest: --verify goes alone")
