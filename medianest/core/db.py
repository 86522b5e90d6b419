"""Database engine and schema version checks.

SQLite (the embedded default) runs through aiosqlite in WAL mode with foreign keys on;
PostgreSQL runs through asyncpg. Schema changes are Alembic migrations; the app refuses to
start on a database that is behind the code and names the command that brings it up to date.

Plugins ship their own migrations, on Alembic branches of their own (see
``medianest.core.revisions``): ``medianest migrate`` applies every branch. At start, a new
database gets every branch; a plugin installed since gets its tables created as a new database
does; a plugin whose tables are behind is not started (the registry marks it failed, saying to
run ``medianest migrate``), and the rest of MediaNest is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .models import AppState
from .revisions import CORE_VERSIONS, Branch, Graph, installed_branches
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


def alembic_config(branches: Sequence[Branch] = ()) -> Config:
    """Alembic's configuration: the kernel's scripts and those of ``branches``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Both names of the option: Alembic 1.16 renamed it.
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_path_separator", "os")
    locations = [str(CORE_VERSIONS), *(str(b.folder) for b in branches)]
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
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


def _branches(branches: Sequence[Branch] | None) -> Sequence[Branch]:
    """``branches``, or by default those of every installed plugin."""
    return installed_branches() if branches is None else branches


@dataclass(frozen=True)
class BranchStatus:
    """Where the tables of one plugin are."""

    name: str
    current: str | None
    head: str
    # Nothing of it applied and none of its tables there: a plugin installed since.
    new: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def problem(self) -> str:
        """Why the plugin cannot start, and what the operator should do."""
        return (
            f"the schema of its tables is at revision {self.current or 'none'}, this version "
            f"of it needs {self.head}: run `medianest migrate` to upgrade it"
        )


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    empty: bool  # no tables at all: a new installation
    # Revisions in the version table that neither the kernel nor an installed plugin knows.
    unknown: tuple[str, ...] = ()
    # The installed plugins' own migrations.
    plugins: tuple[BranchStatus, ...] = ()

    @property
    def up_to_date(self) -> bool:
        """The kernel's schema is current (the plugins' may not be: see ``plugins``)."""
        return self.current == self.head and not self.unknown

    @property
    def complete(self) -> bool:
        """The kernel's schema and every plugin's are current."""
        return self.up_to_date and all(p.up_to_date for p in self.plugins)

    def plugin(self, name: str) -> BranchStatus | None:
        return next((p for p in self.plugins if p.name == name), None)


def _status(connection: Connection, branches: Sequence[Branch]) -> SchemaStatus:
    # Tables first, revision second: each read may see a newer database than the one before
    # (another process's first migration committing in between), and a schema only appears
    # together with its revision. The other order can see that revision missing and then
    # the tables present, and would report a schema that is neither new nor up to date.
    tables = inspect(connection).get_table_names()
    rows: list[str] = []
    if VERSION_TABLE in tables:
        found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        rows = sorted(str(r) for r in found)
    graph = Graph(branches)
    applied = graph.applied(rows)
    plugins = []
    for branch in branches:
        scripts = graph.branches[branch.name]
        if not scripts:
            continue
        mine = applied & set(scripts)
        plugins.append(
            BranchStatus(
                name=branch.name,
                current=graph.newest(mine),
                head=graph.newest(scripts) or "",
                new=not mine and branch.tables is not None and not branch.tables & set(tables),
            )
        )
    return SchemaStatus(
        current=graph.newest(applied & set(graph.core)),
        head=head_revision(),
        empty=not rows and not tables,
        unknown=tuple(r for r in rows if r not in graph),
        plugins=tuple(plugins),
    )


async def schema_status(
    engine: AsyncEngine, branches: Sequence[Branch] | None = None
) -> SchemaStatus:
    """Where the schema is: the kernel's, and that of ``branches`` (by default, every
    installed plugin's)."""
    chosen = _branches(branches)
    async with engine.connect() as conn:
        return await conn.run_sync(_status, chosen)


async def migrate(
    engine: AsyncEngine,
    revision: str = "heads",
    *,
    downgrade: bool = False,
    branches: Sequence[Branch] | None = None,
) -> None:
    """Upgrade (or downgrade) the schema to ``revision``: by default every branch, the
    kernel's and that of each of ``branches`` (by default, every installed plugin's), to its
    newest revision. ``"youtube@base"`` names a plugin's branch."""
    chosen = _branches(branches)

    def run(connection: Connection) -> None:
        from alembic import command

        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        status = _status(connection, chosen)
        if status.unknown:
            # Alembic cannot move from a revision it has no script of.
            raise SchemaError(schema_problem(status))
        cfg = alembic_config(chosen)
        cfg.attributes["connection"] = connection
        if downgrade:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def check_schema(
    engine: AsyncEngine, branches: Sequence[Branch] | None = None
) -> SchemaStatus:
    """Initialise a new, empty database (every branch); refuse a database whose kernel schema
    is at any other revision than head. A plugin installed since (none of its migrations
    applied, none of its tables there) has its tables created now, as a new database would;
    a plugin whose tables are behind is left as it is, for the registry not to start it."""
    chosen = _branches(branches)
    status = await schema_status(engine, chosen)
    if status.empty:
        await migrate(engine, branches=chosen)
        return await schema_status(engine, chosen)
    if not status.up_to_date:
        raise SchemaError(schema_problem(status))
    new = [p for p in status.plugins if p.new]
    for plugin in new:
        log.info("creating the tables of plugin %s (revision %s)", plugin.name, plugin.head)
        await migrate(engine, plugin.head, branches=chosen)
    return await schema_status(engine, chosen) if new else status


def schema_problem(status: SchemaStatus) -> str:
    """Say why a database not at head cannot be used, and what the operator should do."""
    if status.unknown:
        revisions = ", ".join(repr(r) for r in status.unknown)
        return (
            f"the database is at schema revision {revisions}, which this version of MediaNest "
            "does not know: it was upgraded by a newer MediaNest, or by a plugin that is not "
            "installed now. Run that version (or install the plugin again), or restore a "
            "backup taken before the upgrade."
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
