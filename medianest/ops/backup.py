"""Backups of the database: consistent, compressed, checked archives, and their restoring.

An archive is a gzip-compressed tar file holding ``manifest.json`` first and then one copy of
the database: ``database.sqlite3`` (SQLite's online backup API, copied inside one read
transaction, so a server writing meanwhile neither blocks nor restarts it) or ``database.sql``
(one ``pg_dump`` run on a snapshot exported by the transaction that also counts the rows). Every
table is in it: MediaNest's own and every plugin's. The manifest records the schema revisions
(the core's, and every row of Alembic's version table: each plugin's branch has its own), the
row count of every table and the SHA-256 of every member; restoring checks all of it before
anything is written, and ``verify`` restores into a throwaway database to prove that an archive
restores. An archive of an older schema is migrated to this version's, every plugin's tables
included.

The key that decrypts stored secrets is never put in an archive: a leaked archive must not
reveal the secrets it holds encrypted. It is backed up separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import __version__
from ..core import db
from ..core.crypto import SecretBox, generate_key
from ..core.revisions import Graph, installed_branches
from ..core.settings import Settings, key_file, load_keyring
from .rotation import SecretFieldsOf, keys_in_use

FORMAT = "medianest-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
POSTGRES_MEMBER = "database.sql"
ARCHIVE_PREFIX = "medianest-backup-"
ARCHIVE_SUFFIX = ".tar.gz"
_NAME = re.compile(r"^medianest-backup-(\d{8}T\d{6}Z)\.tar\.gz$")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_CHUNK = 1 << 20
# Pages copied per step of SQLite's online backup: small enough to report progress often.
_SQLITE_PAGES_PER_STEP = 1024

# Receives a one-line status ("dumping: 3 of 14 tables, 12.0 MB") while a long step runs.
Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup, restore or verification cannot be done; the message says why and what to do."""


@dataclass
class Restored:
    """What a restore (or a verification) did."""

    manifest: dict[str, Any]
    # The schema revision the archive was at, when it was migrated to this version's.
    migrated_from: str | None = None
    # Where a stored secret is that the configured keys do not decrypt.
    unreadable: list[str] = field(default_factory=list)
    # Why no key could be tried (none configured), if so.
    key_problem: str | None = None


def _quiet(_: str) -> None:
    pass


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _revisions(rows: list[str]) -> dict[str, Any]:
    """What the manifest says of the schema, from the version table's ``rows``: every row, and
    the core's revision (or, when some rows are of no revision this MediaNest knows, those)."""
    graph = Graph(installed_branches())
    unknown = [r for r in rows if r not in graph]
    core = graph.newest(graph.applied(rows) & set(graph.core))
    return {"schema_revision": ",".join(unknown) if unknown else core, "schema_revisions": rows}


def _manifest_rows(manifest: dict[str, Any]) -> list[str]:
    """The version table's rows an archive holds (an archive of before plugins had their own
    migrations records the one revision there was)."""
    rows = manifest.get("schema_revisions")
    if rows is None:
        revision = manifest.get("schema_revision")
        return [] if revision is None else [str(revision)]
    return [str(r) for r in rows]


def _rows(tables: dict[str, int]) -> int:
    return sum(tables.values())


def describe(manifest: dict[str, Any]) -> str:
    """One line about what an archive holds."""
    tables = manifest["tables"]
    return (
        f"{_rows(tables)} rows in {len(tables)} tables, schema {manifest['schema_revision']}, "
        f"{manifest['database']}, taken {manifest['created_at']} by MediaNest "
        f"{manifest['medianest_version']}"
    )


def database_label(settings: Settings) -> str:
    """The configured database, for messages (never its password)."""
    if settings.is_sqlite:
        return str(settings.sqlite_path)
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=True)


# --- file names and retention ---------------------------------------------------------------


def archive_name(when: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{when.astimezone(UTC).strftime(_TIME_FORMAT)}{ARCHIVE_SUFFIX}"


def archive_time(name: str) -> datetime | None:
    """When the archive named ``name`` was taken, or None for a file ``backup`` did not name."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def prune(folder: Path, *, keep_daily: int = 0, keep_weekly: int = 0) -> list[Path]:
    """Delete the archives of ``folder`` that no rule keeps; return the deleted ones.

    ``keep_daily`` keeps the newest archive of each of that many most recent days that have
    one; ``keep_weekly`` then the newest of each of that many weeks (ISO weeks) further back,
    an archive already kept by the daily rule not counting. Days without an archive count
    for nothing, so a server that was off for a month keeps its last archives. Only files
    named as ``backup`` names them are ever touched.
    """
    archives = sorted(
        ((when, path) for path in folder.iterdir() if (when := archive_time(path.name))),
        reverse=True,
    )
    periods: list[tuple[int, Callable[[datetime], object]]] = [
        (keep_daily, lambda t: t.date()),
        (keep_weekly, lambda t: t.isocalendar()[:2]),
    ]
    kept: set[Path] = set()
    for count, period_of in periods:
        if count <= 0:
            continue
        last: object = None
        chosen = 0
        for when, path in archives:
            period = period_of(when)
            if period == last:
                continue
            last = period
            if path in kept:
                continue
            kept.add(path)
            chosen += 1
            if chosen == count:
                break
    removed = [path for _, path in archives if path not in kept]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# --- making an archive ----------------------------------------------------------------------


def _destination(settings: Settings, output: Path | None, now: datetime) -> Path:
    if output is not None and output.name.endswith(ARCHIVE_SUFFIX):
        return output
    folder = output if output is not None else settings.data_dir / "backups"
    return folder / archive_name(now)


async def create_backup(
    settings: Settings, output: Path | None = None, progress: Progress = _quiet
) -> tuple[Path, dict[str, Any]]:
    """Write an archive of the configured database; return its path and manifest.

    ``output`` is a folder (the archive is named after the time) or a file name ending in
    ``.tar.gz``; by default the folder ``backups`` of the data folder.
    """
    now = datetime.now(UTC)
    path = _destination(settings, output, now)
    if path.exists():
        raise BackupError(f"{path} exists already; choose another name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the folder {path.parent}: {exc}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise BackupError(f"cannot write into the folder {path.parent}: permission denied")
    with tempfile.TemporaryDirectory(prefix=".medianest-backup-", dir=path.parent) as work:
        if settings.is_sqlite:
            member = Path(work) / SQLITE_MEMBER
            facts = await asyncio.to_thread(_snapshot_sqlite, settings, member, progress)
        else:
            member = Path(work) / POSTGRES_MEMBER
            facts = await _snapshot_postgres(settings, member, progress)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "medianest_version": __version__,
            "database": "sqlite" if settings.is_sqlite else "postgresql",
            "created_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            **facts,
            "members": {member.name: await asyncio.to_thread(_digest, member)},
        }
        await asyncio.to_thread(_write_archive, path, manifest, member, progress)
    return path, manifest


def _digest(path: Path) -> dict[str, Any]:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return {"size": path.stat().st_size, "sha256": sha.hexdigest()}


class _Counting:
    """A file read through, reporting how much of it has been read."""

    def __init__(self, fh: IO[bytes], report: Callable[[int], None]) -> None:
        self._fh, self._report, self.done = fh, report, 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.done += len(data)
        self._report(self.done)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.done = self._fh.seek(offset, whence)
        return self.done


def _write_archive(path: Path, manifest: dict[str, Any], member: Path, progress: Progress) -> None:
    partial = path.with_name(path.name + ".partial")
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    total = member.stat().st_size
    try:
        with partial.open("wb") as raw:
            with (
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(body), int(datetime.now().timestamp()), 0o600
                tar.addfile(info, io.BytesIO(body))
                info = tarfile.TarInfo(member.name)
                info.size, info.mtime, info.mode = total, int(member.stat().st_mtime), 0o600
                with member.open("rb") as fh:
                    reader = _Counting(
                        fh,
                        lambda done: progress(
                            f"compressing: {megabytes(done)} of {megabytes(total)}"
                        ),
                    )
                    tar.addfile(info, reader)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY name"
    ).fetchall()
    return [name for (name,) in rows]


def _sqlite_counts(conn: sqlite3.Connection, progress: Progress = _quiet) -> dict[str, int]:
    tables = _sqlite_tables(conn)
    counts = {}
    for done, name in enumerate(tables, 1):
        counts[name] = int(conn.execute(f"SELECT count(*) FROM {_ident(name)}").fetchone()[0])
        progress(f"counting rows: {done} of {len(tables)} tables")
    return counts


def _sqlite_revisions(conn: sqlite3.Connection, tables: dict[str, int]) -> list[str]:
    if "alembic_version" not in tables:
        return []
    return sorted(str(r) for (r,) in conn.execute("SELECT version_num FROM alembic_version"))


def _snapshot_sqlite(settings: Settings, target: Path, progress: Progress) -> dict[str, Any]:
    source = settings.sqlite_path
    assert source is not None
    if not source.is_file():
        raise BackupError(f"there is no database at {source} to back up")
    with closing(sqlite3.connect(source, timeout=30, isolation_level=None)) as conn:
        conn.execute("PRAGMA busy_timeout = 30000")
        # One read transaction around the counting and the copy: both see the same moment, and
        # in WAL mode the server keeps writing meanwhile. The copy goes step by step through
        # this transaction, so writes by the server do not restart it.
        conn.execute("BEGIN")
        try:
            tables = _sqlite_counts(conn, progress)
            rows = _sqlite_revisions(conn, tables)

            def copied(_status: int, remaining: int, total: int) -> None:
                size = page_size * total
                progress(f"copying: {megabytes(size - page_size * remaining)} of {megabytes(size)}")

            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            with closing(sqlite3.connect(target)) as copy:
                conn.backup(copy, pages=_SQLITE_PAGES_PER_STEP, progress=copied)
        finally:
            conn.execute("COMMIT")
    return {**_revisions(rows), "tables": tables}


# --- PostgreSQL -----------------------------------------------------------------------------


def _pg_environment(settings: Settings, database: str | None = None) -> dict[str, str]:
    """libpq's environment for the configured database: the password never on a command line."""
    url = make_url(settings.database_url)
    env = dict(os.environ)
    values = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": database or url.database,
        "PGSSLMODE": url.query.get("sslmode") or url.query.get("ssl"),
    }
    env.update({k: str(v) for k, v in values.items() if v})
    # English messages: they are parsed for progress and quoted in errors.
    env["LC_MESSAGES"] = "C"
    env["PGAPPNAME"] = "medianest backup"
    return env


def _tool(name: str, server_major: int) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} was not found on PATH; install the PostgreSQL {server_major} client tools "
            f"(Debian and Ubuntu: postgresql-client-{server_major}, or postgresql-client)"
        )
    return path


async def _tool_major(path: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        path, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    match = re.search(r"\(PostgreSQL\)\s+((\d+)(?:\.\d+)*)", out.decode(errors="replace"))
    if match is None:
        raise BackupError(f"{path} --version did not say which PostgreSQL it belongs to")
    return int(match.group(2)), match.group(1)


async def _server_version(conn: AsyncConnection) -> tuple[int, str]:
    number = int((await conn.exec_driver_sql("SHOW server_version_num")).scalar_one())
    version = str((await conn.exec_driver_sql("SHOW server_version")).scalar_one()).split()[0]
    return number // 10000, version


async def _pg_tables(conn: AsyncConnection) -> tuple[str, list[str]]:
    schema = str((await conn.exec_driver_sql("SELECT current_schema()")).scalar_one())
    rows = await conn.execute(
        text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = :schema AND table_type = 'BASE TABLE' ORDER BY table_name"
        ),
        {"schema": schema},
    )
    return schema, [str(name) for (name,) in rows]


async def _pg_counts(
    conn: AsyncConnection, schema: str, tables: list[str], progress: Progress = _quiet
) -> dict[str, int]:
    counts = {}
    for done, name in enumerate(tables, 1):
        query = f"SELECT count(*) FROM {_ident(schema)}.{_ident(name)}"
        counts[name] = int((await conn.exec_driver_sql(query)).scalar_one())
        progress(f"counting rows: {done} of {len(tables)} tables")
    return counts


async def _pg_revisions(conn: AsyncConnection, tables: dict[str, int]) -> list[str]:
    if "alembic_version" not in tables:
        return []
    rows = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
    return sorted(str(r) for r in rows.scalars())


@asynccontextmanager
async def _engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _snapshot_postgres(
    settings: Settings, target: Path, progress: Progress
) -> dict[str, Any]:
    async with _engine(settings) as engine, engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            server_major, server_version = await _server_version(conn)
            pg_dump = _tool("pg_dump", server_major)
            dump_major, dump_version = await _tool_major(pg_dump)
            if dump_major != server_major:
                # An older pg_dump cannot read a newer server; a newer one writes SQL that an
                # older server may not take back (settings it does not know).
                raise BackupError(
                    f"{pg_dump} is of PostgreSQL {dump_version}, the server of PostgreSQL "
                    f"{server_version}: install the PostgreSQL {server_major} client tools "
                    f"(Debian and Ubuntu: postgresql-client-{server_major}) and put their bin "
                    "folder first on PATH"
                )
            # pg_dump reads the very snapshot this transaction counts the rows in.
            snapshot = str((await conn.exec_driver_sql("SELECT pg_export_snapshot()")).scalar())
            schema, names = await _pg_tables(conn)
            tables = await _pg_counts(conn, schema, names, progress)
            rows = await _pg_revisions(conn, tables)
            await _run_pg_dump(pg_dump, settings, snapshot, target, len(names), progress)
    return {
        **_revisions(rows),
        "tables": tables,
        "postgresql": {"schema": schema, "server": server_version, "pg_dump": dump_version},
    }


async def _run_pg_dump(
    pg_dump: str,
    settings: Settings,
    snapshot: str,
    target: Path,
    table_count: int,
    progress: Progress,
) -> None:
    process = await asyncio.create_subprocess_exec(
        pg_dump,
        "--format=plain",
        "--no-owner",
        "--no-privileges",
        "--verbose",
        f"--snapshot={snapshot}",
        env=_pg_environment(settings),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    state = {"tables": 0, "bytes": 0}
    errors: list[str] = []

    def report() -> None:
        progress(f"dumping: {state['tables']} of {table_count} tables, {megabytes(state['bytes'])}")

    async def read_log(stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").strip()
            if "dumping contents of table" in line:
                state["tables"] += 1
                report()
            elif "error" in line.lower() or "fatal" in line.lower():
                errors.append(line)

    async def copy(stream: asyncio.StreamReader) -> None:
        with target.open("wb") as out:
            while chunk := await stream.read(_CHUNK):
                await asyncio.to_thread(out.write, chunk)
                state["bytes"] += len(chunk)
                report()
            out.flush()
            os.fsync(out.fileno())

    await asyncio.gather(copy(process.stdout), read_log(process.stderr))
    if await process.wait() != 0:
        raise BackupError(f"pg_dump failed: {' / '.join(errors) or 'no message'}")


# --- reading an archive ---------------------------------------------------------------------


def _check_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupError("its manifest is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("it is not a MediaNest backup (its manifest is not one)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupError(
            f"it is of backup format {version!r}, newer than this MediaNest reads "
            f"({FORMAT_VERSION}): restore it with the MediaNest that made it"
        )
    tables = manifest.get("tables")
    members = manifest.get("members")
    if (
        manifest.get("database") not in ("sqlite", "postgresql")
        or not isinstance(tables, dict)
        or not all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in tables.items())
        or not isinstance(members, dict)
        or not members
        or not all(
            isinstance(m, dict) and type(m.get("size")) is int and isinstance(m.get("sha256"), str)
            for m in members.values()
        )
        or not set(members) <= {SQLITE_MEMBER, POSTGRES_MEMBER}
    ):
        raise BackupError("its manifest is incomplete")
    rows = manifest.get("schema_revisions")
    if rows is not None and not (isinstance(rows, list) and all(isinstance(r, str) for r in rows)):
        raise BackupError("its manifest is incomplete")
    graph = Graph(installed_branches())
    unknown = [r for r in _manifest_rows(manifest) if r not in graph]
    if unknown:
        raise BackupError(
            f"it was taken of a database at schema revision {', '.join(map(repr, unknown))}, "
            f"which this version of MediaNest ({__version__}) does not know: it comes from a "
            "newer MediaNest, or holds the tables of a plugin not installed here. Restore it "
            "with that version (or a newer one), or install that plugin first."
        )
    return manifest


def read_archive(
    archive: Path, work: Path, progress: Progress = _quiet
) -> tuple[dict[str, Any], Path]:
    """Check ``archive`` (manifest, every checksum, the compression's own) while unpacking its
    database into the folder ``work``; return the manifest and the unpacked database."""
    try:
        return _read_archive(archive, work, progress)
    except BackupError as exc:
        raise BackupError(f"{archive} is refused: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupError(
            f"{archive} is refused: it is damaged or truncated ({exc or type(exc).__name__})"
        ) from None


def _read_archive(archive: Path, work: Path, progress: Progress) -> tuple[dict[str, Any], Path]:
    total = archive.stat().st_size
    with archive.open("rb") as raw:
        reader = _Counting(
            raw, lambda done: progress(f"checking: {megabytes(done)} of {megabytes(total)}")
        )
        with (
            gzip.GzipFile(fileobj=reader, mode="rb") as gz,
            tarfile.open(fileobj=gz, mode="r|") as tar,
        ):
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise BackupError("it is not a MediaNest backup (no manifest first)")
            fh = tar.extractfile(first)
            assert fh is not None
            manifest = _check_manifest(fh.read())
            expected: dict[str, dict[str, Any]] = manifest["members"]
            found: dict[str, dict[str, Any]] = {}
            while (info := tar.next()) is not None:
                if info.name not in expected or info.name in found or not info.isfile():
                    raise BackupError(f"it holds an unexpected member {info.name!r}")
                found[info.name] = _unpack(tar, info, work / info.name)
            # To the end of the compressed stream: gzip checks its CRC and length there.
            while gz.read(_CHUNK):
                pass
    for name, want in expected.items():
        got = found.get(name)
        if got is None:
            raise BackupError(f"it is truncated: {name} is missing")
        if got != {"size": want["size"], "sha256": want["sha256"]}:
            raise BackupError(f"the checksum of {name} does not match its manifest")
    (name,) = expected
    return manifest, work / name


def _unpack(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path) -> dict[str, Any]:
    source = tar.extractfile(info)
    assert source is not None
    sha = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return {"size": size, "sha256": sha.hexdigest()}


def _mismatch(expected: dict[str, int], found: dict[str, int]) -> str | None:
    wrong = [
        f"{name}: {found.get(name, 'no table')} rows, the manifest says {count}"
        for name, count in sorted(expected.items())
        if found.get(name) != count
    ]
    extra = sorted(set(found) - set(expected))
    if extra:
        wrong.append(f"tables the manifest does not list: {', '.join(extra)}")
    return "; ".join(wrong) or None


# --- restoring ------------------------------------------------------------------------------


def _kind_check(settings: Settings, manifest: dict[str, Any]) -> None:
    kind = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(
            f"the archive holds a {manifest['database']} database and the configured database "
            f"is {kind}; set MEDIANEST_DATABASE_URL to a {manifest['database']} database"
        )


def _peek_manifest(archive: Path) -> dict[str, Any]:
    """The manifest alone (the first member), to refuse early what cannot be restored here."""
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            first = tar.next()
            fh = tar.extractfile(first) if first is not None and first.name == MANIFEST else None
            if fh is None:
                raise BackupError("it is not a MediaNest backup (no manifest first)")
            return _check_manifest(fh.read())
    except BackupError as exc:
        raise BackupError(f"{archive} is refused: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(
            f"{archive} is refused: it is damaged or truncated or not a MediaNest backup ({exc})"
        ) from None


def _holding(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n and name != "alembic_version"}


def _non_empty(label: str, held: dict[str, int]) -> BackupError:
    sample = ", ".join(f"{n} in {name}" for name, n in sorted(held.items())[:4])
    return BackupError(
        f"the database {label} already holds data ({_rows(held)} rows: {sample}"
        f"{', …' if len(held) > 4 else ''}); restore into an empty database, or add --force to "
        "replace everything it holds with the archive"
    )


async def restore(
    settings: Settings,
    archive: Path,
    *,
    force: bool = False,
    secret_fields_of: SecretFieldsOf | None = None,
    progress: Progress = _quiet,
) -> Restored:
    """Restore ``archive`` into the configured database, which must hold no data unless
    ``force``. Everything is checked before anything is written; an archive of an older schema
    is migrated to this version's, one of a newer schema is refused."""
    manifest = _peek_manifest(archive)
    _kind_check(settings, manifest)
    if settings.is_sqlite:
        result = await _restore_sqlite(settings, archive, force, progress)
    else:
        result = await _restore_postgres(settings, archive, force, progress)
    if secret_fields_of is not None:
        async with _engine(settings) as engine:
            await check_secrets(engine, settings, secret_fields_of, result)
    return result


async def _restore_sqlite(
    settings: Settings, archive: Path, force: bool, progress: Progress
) -> Restored:
    target = settings.sqlite_path
    assert target is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".medianest-restore-", dir=target.parent) as work:
        manifest, copy = await asyncio.to_thread(read_archive, archive, Path(work), progress)
        held = await asyncio.to_thread(_sqlite_holding, target)
        if held and not force:
            raise _non_empty(str(target), held)
        migrated_from = await _prepare_sqlite_copy(settings, copy, manifest, progress)
        await asyncio.to_thread(_replace_sqlite, target, copy)
    return Restored(manifest, migrated_from)


def _sqlite_holding(target: Path) -> dict[str, int]:
    if not target.exists():
        return {}
    with closing(sqlite3.connect(target, timeout=30)) as conn:
        return _holding(_sqlite_counts(conn))


def _replace_sqlite(target: Path, copy: Path) -> None:
    if target.exists():
        # The write-ahead log of the database being replaced must not be applied to the
        # restored one: fold it in, then remove it with the shared-memory file.
        with closing(sqlite3.connect(target, timeout=30)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(copy, target)


async def _prepare_sqlite_copy(
    settings: Settings, copy: Path, manifest: dict[str, Any], progress: Progress
) -> str | None:
    """Check an unpacked SQLite database against its manifest and bring its schema up to
    date; return the revision it was migrated from, if it was."""

    def check() -> None:
        with closing(sqlite3.connect(copy)) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                raise BackupError(f"the database in the archive is damaged: {problems[0]}")
            wrong = _mismatch(manifest["tables"], _sqlite_counts(conn, progress))
        if wrong:
            raise BackupError(f"the restored rows do not match the manifest: {wrong}")

    await asyncio.to_thread(check)
    scratch = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{copy}"})
    return await _migrate(scratch, manifest)


async def _migrate(settings: Settings, manifest: dict[str, Any]) -> str | None:
    """Bring a restored database to this version's schema, the plugins' tables included;
    return where it was (the core's revision, and each plugin's that was behind), if it was
    not there."""
    if not _manifest_rows(manifest):
        return None
    async with _engine(settings) as engine:
        status = await db.schema_status(engine)
        if status.complete:
            return None
        await db.migrate(engine)
    where = status.current or "none"
    if status.up_to_date:  # only plugins' tables were behind: say which
        behind = [f"{p.name} at {p.current or 'none'}" for p in status.plugins if not p.up_to_date]
        where += f" (the tables of {', '.join(behind)})"
    return where


async def _restore_postgres(
    settings: Settings, archive: Path, force: bool, progress: Progress
) -> Restored:
    with tempfile.TemporaryDirectory(prefix="medianest-restore-") as work:
        manifest, dump = await asyncio.to_thread(read_archive, archive, Path(work), progress)
        async with _engine(settings) as engine:
            async with engine.connect() as conn:
                server_major, _ = await _server_version(conn)
                schema, names = await _pg_tables(conn)
                held = _holding(await _pg_counts(conn, schema, names))
            if held and not force:
                raise _non_empty(database_label(settings), held)
            await _psql(settings, None, dump, manifest, names, server_major, progress)
        return Restored(manifest, await _migrate(settings, manifest))


async def _psql(
    settings: Settings,
    database: str | None,
    dump: Path,
    manifest: dict[str, Any],
    drop: list[str],
    server_major: int,
    progress: Progress,
) -> None:
    """Run the dump through psql in one transaction that first drops the tables ``drop`` and
    last checks every table's row count against the manifest: all of it happens, or nothing."""
    psql = _tool("psql", server_major)
    schema = _ident(manifest.get("postgresql", {}).get("schema", "public"))
    before = "".join(f"DROP TABLE IF EXISTS {schema}.{_ident(t)} CASCADE;\n" for t in drop)
    checks = "".join(
        f"  SELECT count(*) INTO n FROM {schema}.{_ident(name)};\n"
        f"  IF n <> {count} THEN RAISE EXCEPTION 'table % has % rows after the restore, the "
        f"manifest says {count}', {_literal(name)}, n; END IF;\n"
        for name, count in sorted(manifest["tables"].items())
    )
    after = f"\nDO $medianest$\nDECLARE n bigint;\nBEGIN\n{checks}END\n$medianest$;\n"
    process = await asyncio.create_subprocess_exec(
        psql,
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        "--file=-",
        env=_pg_environment(settings, database),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stderr is not None
    total = manifest["members"][dump.name]["size"]

    async def feed(stdin: asyncio.StreamWriter) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(before.encode())
            done = 0
            with dump.open("rb") as fh:
                while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                    stdin.write(chunk)
                    await stdin.drain()
                    done += len(chunk)
                    progress(f"restoring: {megabytes(done)} of {megabytes(total)}")
            stdin.write(after.encode())
            await stdin.drain()
            stdin.close()

    _, errors = await asyncio.gather(feed(process.stdin), process.stderr.read())
    if await process.wait() != 0:
        lines = errors.decode(errors="replace").splitlines()
        first = next((line for line in lines if "ERROR:" in line), lines[0] if lines else "")
        reason = first.split("ERROR:", 1)[-1].strip() or "psql failed without a message"
        raise BackupError(f"the restore failed and was rolled back: {reason}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- verifying ------------------------------------------------------------------------------


async def verify(settings: Settings, archive: Path, progress: Progress = _quiet) -> Restored:
    """Prove that ``archive`` restores: restore it into a throwaway database (a temporary
    SQLite file; a temporary PostgreSQL database on the configured server, dropped after),
    compare every table's row count with the manifest and migrate it to this version."""
    manifest = _peek_manifest(archive)
    if manifest["database"] == "sqlite":
        with tempfile.TemporaryDirectory(prefix="medianest-verify-") as work:
            manifest, copy = await asyncio.to_thread(read_archive, archive, Path(work), progress)
            migrated_from = await _prepare_sqlite_copy(settings, copy, manifest, progress)
        return Restored(manifest, migrated_from)
    if settings.is_sqlite:
        raise BackupError(
            "the archive holds a PostgreSQL database: verifying it needs a PostgreSQL server, "
            "set MEDIANEST_DATABASE_URL to one (a temporary database is created there and dropped)"
        )
    with tempfile.TemporaryDirectory(prefix="medianest-verify-") as work:
        manifest, dump = await asyncio.to_thread(read_archive, archive, Path(work), progress)
        async with _scratch_database(settings) as (scratch, name, server_major):
            await _psql(scratch, name, dump, manifest, [], server_major, progress)
            return Restored(manifest, await _migrate(scratch, manifest))


@asynccontextmanager
async def _scratch_database(settings: Settings) -> AsyncIterator[tuple[Settings, str, int]]:
    name = f"medianest_verify_{uuid.uuid4().hex[:12]}"
    async with _engine(settings) as engine:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            server_major, _ = await _server_version(conn)
            try:
                await conn.exec_driver_sql(f"CREATE DATABASE {_ident(name)}")
            except Exception as exc:
                raise BackupError(
                    "verifying creates a temporary database, and the server refused: "
                    f"{getattr(exc, 'orig', exc)} (the database user needs CREATEDB)"
                ) from None
        url = make_url(settings.database_url).set(database=name)
        scratch = settings.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )
        try:
            yield scratch, name, server_major
        finally:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


# --- the key --------------------------------------------------------------------------------


async def check_secrets(
    engine: AsyncEngine, settings: Settings, secret_fields_of: SecretFieldsOf, result: Restored
) -> None:
    """Try the configured keys on every stored secret of a restored database; record in
    ``result`` which ones they do not decrypt."""
    try:
        keys = load_keyring(settings, create=False)
    except FileNotFoundError:
        keys = []
    if not keys:
        result.key_problem = (
            f"no key is configured (neither {key_file(settings)} nor MEDIANEST_SECRET_KEY)"
        )
        # A key nothing was encrypted with: every stored secret is then reported.
        keys = [generate_key()]
    report = await keys_in_use(engine, SecretBox(keys), secret_fields_of)
    result.unreadable = report.unreadable
