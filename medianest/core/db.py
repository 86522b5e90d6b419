"""Database engine and schema version checks.

SQLite (the embedded default) runs through aiosqlite in WAL mode with foreign keys on;
PostgreSQL runs through asyncpg. Schema changes are Alembic migrations; the app refuses to
start on a database that is behind the code and names the command that brings it up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .models import AppState
from .settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Arbitrary constant: serialises concurrent migrations of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x6D656469


class SchemaError(Exception):
    """The database schema does not match this version of MediaNest."""


def create_engine(settings: Settings) -> AsyncEngine:
    """Open the configured database; for SQLite, create the folder and set the pragmas."""
    if settings.is_sqlite:
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(settings.database_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(settings.database_url, pool_size=10, max_overflow=10)


# KiB of SQLite's page cache per connection.
SQLITE_CACHE_KIB = 512

# One writer at a time per SQLite database of this process, waiting in turn (see writing()).
_WRITERS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` for a transaction that writes.

    SQLite has one writer: a connection that finds the database locked sleeps and tries again
    (``busy_timeout``), up to 100 ms at a time, and the lock may stand free meanwhile. On
    SQLite, writing transactions of this process therefore take turns here first, in the order
    they came, and each finds the database free. PostgreSQL locks rows, not the database: its
    transactions go ahead at once.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    lock = _WRITERS.get(engine.sync_engine)
    if lock is None:
        lock = _WRITERS[engine.sync_engine] = asyncio.Lock()
    async with lock, engine.begin() as conn:
        yield conn


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Each pooled connection keeps its own page cache (2 MiB by default, up to 15 connections);
    # the operating system caches the file for all of them, and the hot reads come from
    # MediaNest's own cache.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


# Alembic is loaded only to migrate or to explain a schema that is not current: every start
# checks the revision, and reads it without Alembic (its import is about a tenth of the
# process's memory).
_MIGRATION_FILE = re.compile(r"^(\d{4})_\w+\.py$")
VERSION_TABLE = "alembic_version"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision: migrations are ``versions/NNNN_name.py`` with revision ``"NNNN"``,
    each the parent of the next (the tests hold Alembic's own view of the scripts to this)."""
    numbers = [
        m.group(1)
        for f in (MIGRATIONS_DIR / "versions").iterdir()
        if (m := _MIGRATION_FILE.match(f.name))
    ]
    assert numbers, "no migrations found"
    return max(numbers)


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    empty: bool  # no tables at all: a new installation

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _status(connection: Connection) -> SchemaStatus:
    # Tables first, revision second: each read may see a newer database than the one before
    # (another process's first migration committing in between), and a schema only appears
    # together with its revision. The other order can see that revision missing and then
    # the tables present, and would report a schema that is neither new nor up to date.
    tables = inspect(connection).get_table_names()
    current = None
    if VERSION_TABLE in tables:
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        # More than one row (branches) is no revision this MediaNest knows.
        current = ",".join(sorted(rows)) or None
    empty = current is None and not tables
    return SchemaStatus(current=current, head=head_revision(), empty=empty)


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    async with engine.connect() as conn:
        return await conn.run_sync(_status)


async def migrate(engine: AsyncEngine, revision: str = "head", *, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the schema to ``revision``."""

    def run(connection: Connection) -> None:
        from alembic import command

        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        if downgrade:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def check_schema(engine: AsyncEngine) -> None:
    """Initialise a new, empty database; refuse a database at any other revision than head."""
    status = await schema_status(engine)
    if status.up_to_date:
        return
    if status.empty:
        await migrate(engine)
        return
    raise SchemaError(schema_problem(status))


def schema_problem(status: SchemaStatus) -> str:
    """Say why a database not at head cannot be used, and what the operator should do."""
    from alembic.script import ScriptDirectory

    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    # No revision at all (e.g. after `migrate --downgrade base`) is behind, not newer.
    if status.current is not None and status.current not in known:
        return (
            f"the database is at schema revision {status.current!r}, which this version of "
            "MediaNest does not know: it was upgraded by a newer MediaNest. Run that version, "
            "or restore a backup taken before the upgrade."
        )
    return (
        f"the database schema is at revision {status.current or 'none'}, "
        f"this MediaNest needs {status.head}. Run `medianest migrate` to upgrade it."
    )


async def installation_id(engine: AsyncEngine) -> str:
    """This installation's stable identifier (e.g. Plex's ``X-Plex-Client-Identifier``)."""
    query = select(AppState.value).where(AppState.key == "installation")
    try:
        async with engine.begin() as conn:
            value = (await conn.execute(query)).scalar()
            if value is not None:
                return str(value["id"])
            new_id = str(uuid.uuid4())
            await conn.execute(insert(AppState).values(key="installation", value={"id": new_id}))
            return new_id
    except IntegrityError:
        pass  # another process created it at the same moment: use theirs
    async with engine.connect() as conn:
        return str((await conn.execute(query)).scalar_one()["id"])


# How often SQLite's statistics are refreshed while MediaNest runs.
STATISTICS_INTERVAL = 6 * 3600.0


async def refresh_statistics(engine: AsyncEngine) -> None:
    """Give SQLite's query planner the statistics of the tables (``ANALYZE``).

    Without them SQLite takes every equality filter for a selective one: the request list
    filtered on the common statuses then joins and sorts thousands of rows instead of reading
    the newest twenty in index order (100x slower at 10,000 requests). PostgreSQL keeps its
    statistics itself (autovacuum).
    """
    if engine.dialect.name != "sqlite":
        return
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")


async def keep_statistics(engine: AsyncEngine, interval: float = STATISTICS_INTERVAL) -> None:
    """Refresh the statistics now and every ``interval`` seconds, until cancelled."""
    while True:
        try:
            await refresh_statistics(engine)
        except DBAPIError as exc:  # busy or read-only: the old statistics serve meanwhile
            log.warning("could not refresh the database statistics: %s", exc)
        await asyncio.sleep(interval)
