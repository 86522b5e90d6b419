"""The schema: Alembic migrations on SQLite and PostgreSQL, and the start-up schema check."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import MakeClient, completed_download
from medianest_plugins.youtube.models import YouTubeDownload
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from tables import CORE_TABLES, METADATA, PLUGIN_TABLES, TABLES

from medianest.app import create_app
from medianest.core import db, revisions
from medianest.core.models import Base, User
from medianest.core.settings import Settings
from medianest.requests.models import MediaItem, MediaRequest


@pytest.fixture
async def engine(db_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(db_settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _indexes(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {ix["name"] for ix in inspector.get_indexes(table) if ix["name"]}
        for table in _tables(connection)
    }


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_tables)


async def set_revision(engine: AsyncEngine, revision: str) -> None:
    """Leave ``revision`` alone in the version table (every branch's row replaced by it)."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM alembic_version"))
        await conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})


async def versions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return sorted(rows.scalars())


def test_the_models_declare_the_tables_the_portal_needs() -> None:
    # The core's tables are on its Base; each plugin's on a MetaData of its own.
    assert set(Base.metadata.tables) == CORE_TABLES
    assert {t for m in METADATA[1:] for t in m.tables} == TABLES - CORE_TABLES
    assert PLUGIN_TABLES["youtube"] == {"youtube_downloads"}


async def test_upgrade_creates_every_table_and_index(engine: AsyncEngine) -> None:
    await db.migrate(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES
        indexes = await conn.run_sync(_indexes)
    for metadata in METADATA:
        for name, table in metadata.tables.items():
            declared = {ix.name for ix in table.indexes}
            assert declared <= indexes[name], f"{name} lacks {declared - indexes[name]}"
    assert "ix_requests_status_created_at" in indexes["requests"]
    status = await db.schema_status(engine)
    assert status.up_to_date and status.current == db.head_revision() and not status.empty
    assert {p.name for p in status.plugins} == set(PLUGIN_TABLES)
    assert status.complete


def test_the_newest_migration_file_is_alembics_head() -> None:
    # The start-up check reads the head from the file names, without loading Alembic.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(db.alembic_config())
    assert scripts.get_heads() == [db.head_revision()]
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_")


def test_each_plugins_migrations_are_a_branch_of_its_own_read_as_alembic_reads_them() -> None:
    """The start-up check reads the plugins' scripts without Alembic: it must see what Alembic
    sees. A plugin's revisions are named after it, and its first one carries its name as the
    branch label (``medianest migrate --downgrade youtube@base``)."""
    from alembic.script import ScriptDirectory

    branches = revisions.installed_branches()
    assert {b.name for b in branches} == set(PLUGIN_TABLES)
    scripts = ScriptDirectory.from_config(db.alembic_config(branches))
    graph = revisions.Graph(branches)
    heads = {graph.newest(graph.branches[b.name]) for b in branches} | {db.head_revision()}
    assert set(scripts.get_heads()) == heads
    for branch in branches:
        mine = graph.branches[branch.name]
        assert mine, branch
        for revision, script in mine.items():
            alembic = scripts.get_revision(revision)
            assert alembic is not None
            assert revision.startswith(f"{branch.name}_")
            assert alembic._versioned_down_revisions == script.down
            assert tuple(alembic._normalized_resolved_dependencies) == script.depends_on
            # Every script of the plugin's folder is on the plugin's branch.
            assert branch.name in scripts.get_revision(revision).branch_labels
            if not script.down:
                assert set(alembic._orig_branch_labels) == {branch.name}
            # A plugin's scripts depend only on the core's revisions (or follow their own).
            assert set(script.depends_on) <= set(graph.core)


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    engine: AsyncEngine,
) -> None:
    await db.migrate(engine)
    await db.migrate(engine, "base", downgrade=True)
    assert await tables(engine) == set()
    status = await db.schema_status(engine)
    assert status.current is None and not status.up_to_date
    assert status.plugins and not any(p.up_to_date for p in status.plugins)

    await db.migrate(engine)
    assert await tables(engine) == TABLES
    assert (await db.schema_status(engine)).complete


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    await db.migrate(engine)
    await db.migrate(engine)
    assert await tables(engine) == TABLES


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    """A model change without its migration (or the reverse) shows up here."""
    await db.migrate(engine)

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        # The core's tables and every installed plugin's, each on its own MetaData.
        return list(compare_metadata(context, METADATA))

    async with engine.connect() as conn:
        differences = await conn.run_sync(compare)
    assert differences == []


async def test_foreign_keys_are_enforced(engine: AsyncEngine) -> None:
    await db.migrate(engine)
    now = datetime.now(UTC)
    user_id, media_id = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(User).values(
                id=user_id,
                username="ann",
                role="user",
                disabled=False,
                preferences={},
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            insert(MediaItem).values(
                id=media_id, title="Alien", type="movie", metadata_={}, created_at=now
            )
        )
        await conn.execute(
            insert(MediaRequest).values(
                id=uuid.uuid4(),
                user_id=user_id,
                media_id=media_id,
                type="movie",
                status="pending",
                details={},
                created_at=now,
            )
        )
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                insert(MediaRequest).values(
                    id=uuid.uuid4(),
                    user_id=uuid.uuid4(),
                    media_id=media_id,
                    type="movie",
                    status="pending",
                    details={},
                    created_at=now,
                )
            )
    # Deleting a user takes their requests with them (ON DELETE CASCADE).
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM users"))
        count = (await conn.execute(text("SELECT count(*) FROM requests"))).scalar_one()
    assert count == 0


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_settings: Settings) -> None:
    engine = db.create_engine(sqlite_settings)
    try:
        async with engine.connect() as conn:
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert journal == "wal"
        assert foreign_keys == 1
    finally:
        await engine.dispose()
    # WAL is a property of the file: another program opening it sees it too.
    path = sqlite_settings.sqlite_path
    assert path is not None and path.exists()
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def start(settings: Settings, extra_plugins: Any = ()) -> web.AppRunner:
    runner = web.AppRunner(await create_app(settings, extra_plugins=extra_plugins))
    await runner.setup()
    return runner


async def test_app_creates_the_schema_of_a_new_database(
    db_settings: Settings, engine: AsyncEngine, make_client: MakeClient
) -> None:
    client = await make_client(db_settings)
    assert (await client.get("/healthz")).status == 200
    assert await tables(engine) == TABLES
    assert (await db.schema_status(engine)).up_to_date


async def test_app_refuses_a_database_that_is_behind(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    await db.migrate(engine)
    await db.migrate(engine, "base", downgrade=True)
    with pytest.raises(db.SchemaError) as caught:
        await start(db_settings)
    message = str(caught.value)
    assert "`medianest migrate`" in message
    assert db.head_revision() in message
    # Nothing was created behind the operator's back.
    assert await tables(engine) == set()

    # Following the advice fixes it.
    await db.migrate(engine)
    runner = await start(db_settings)
    await runner.cleanup()


async def test_app_refuses_a_database_from_a_newer_version(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    await db.migrate(engine)
    await set_revision(engine, "9999_from_the_future")
    with pytest.raises(db.SchemaError) as caught:
        await start(db_settings)
    message = str(caught.value)
    assert "'9999_from_the_future'" in message
    assert "newer MediaNest" in message
    # Migrating would not help: the message must not suggest it.
    assert "medianest migrate" not in message


# --- the plugins' own migrations ------------------------------------------------------------


async def test_a_plugins_tables_go_up_and_down_on_its_own_branch(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    await db.migrate(engine)
    await db.migrate(engine, "youtube@base", downgrade=True)
    assert await tables(engine) == TABLES - PLUGIN_TABLES["youtube"]
    status = await db.schema_status(engine)
    # The core and the other plugins are untouched.
    assert status.up_to_date
    youtube = status.plugin("youtube")
    assert youtube is not None and youtube.current is None and not youtube.up_to_date
    assert all(p.up_to_date for p in status.plugins if p.name != "youtube")

    await db.migrate(engine)
    assert await tables(engine) == TABLES
    assert (await db.schema_status(engine)).complete

    # Downgrading the core below what a plugin's branch depends on takes that branch down
    # first (the youtube branch depends on the core's 0004).
    await db.migrate(engine, "0003", downgrade=True)
    status = await db.schema_status(engine)
    assert status.current == "0003"
    assert status.plugin("youtube") == db.BranchStatus("youtube", None, "youtube_0001")
    assert "youtube_downloads" not in await tables(engine)


async def _user_with_a_download(engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID]:
    """A user holding the youtube permission, and a download of theirs."""
    user_id, download_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(User).values(
                id=user_id,
                username="ann",
                role="user",
                disabled=False,
                preferences={},
                permissions=["request_movies", "youtube"],
                quotas={},
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            insert(YouTubeDownload).values(completed_download(download_id, user_id, now))
        )
    return user_id, download_id


async def test_the_youtube_table_of_an_installation_is_adopted_with_its_rows_and_grants(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    # An installation of the previous release: the core's migrations up to 0005, whose 0004
    # created the downloads table.
    await db.migrate(engine, "0005", branches=[])
    user_id, download_id = await _user_with_a_download(engine)

    # The core's newer migrations leave the table alone, rows included.
    await db.migrate(engine, branches=[])
    assert "youtube_downloads" in await tables(engine)
    status = await db.schema_status(engine)
    assert status.up_to_date
    youtube = status.plugin("youtube")
    assert youtube is not None and youtube.current is None

    # `medianest migrate` adopts it: the plugin's first migration, which creates nothing.
    await db.migrate(engine)
    assert (await db.schema_status(engine)).complete
    async with engine.connect() as conn:
        rows = (await conn.execute(YouTubeDownload.__table__.select())).mappings().all()
        grants = (
            (await conn.execute(User.__table__.select().where(User.id == user_id)))
            .mappings()
            .one()["permissions"]
        )
    assert [(r["id"], r["title"], r["size_kib"]) for r in rows] == [(download_id, "A video", 2048)]
    assert sorted(grants) == ["request_movies", "youtube"]

    # Down and up again: the plugin's branch drops its table, and creates it where missing.
    await db.migrate(engine, "youtube@base", downgrade=True)
    assert "youtube_downloads" not in await tables(engine)
    await db.migrate(engine)
    assert "youtube_downloads" in await tables(engine)
    await db.migrate(engine, "base", downgrade=True)
    assert await tables(engine) == set()


def _plugin_package(root: Path, name: str, scripts: dict[str, str]) -> Any:
    """A plugin package ``name`` under ``root`` with a table ``{name}_things`` and the
    migration ``scripts`` (file name: body after the revision lines), imported."""
    import importlib
    import sys

    package = root / name
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(
        f'''"""A test plugin with a table of its own."""
from sqlalchemy import Column, Integer, MetaData, String, Table

from medianest import hookimpl

metadata = MetaData()
things = Table(
    "{name}_things", metadata, Column("id", Integer, primary_key=True), Column("label", String(20))
)


@hookimpl
def register_tables():
    return metadata


@hookimpl
def activate(plugin):
    plugin.log.info("active")
'''
    )
    for file, body in scripts.items():
        (package / "migrations" / file).write_text(body)
    sys.modules.pop(name, None)  # one of an earlier test
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(root))


def _script(revision: str, down: str | None, depends_on: str | None, upgrade: str) -> str:
    labels = "None" if down else f"({revision.split('_')[0]!r},)"
    return (
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = {labels}\n"
        f"depends_on = {depends_on!r}\n\n\ndef upgrade():\n    {upgrade}\n\n\n"
        "def downgrade():\n    pass\n"
    )


def shelf_plugin(root: Path, name: str = "shelf", depends_on: str = "0001") -> Any:
    create = f"op.create_table({name + '_things'!r}, sa.Column('id', sa.Integer, primary_key=True))"
    add = f"op.add_column({name + '_things'!r}, sa.Column('label', sa.String(20)))"
    return _plugin_package(
        root,
        name,
        {
            "0001_things.py": _script(f"{name}_0001", None, depends_on, create),
            "0002_labels.py": _script(f"{name}_0002", f"{name}_0001", None, add),
        },
    )


async def test_a_plugin_installed_since_has_its_tables_created_at_start(
    db_settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await db.migrate(engine)
    shelf = shelf_plugin(tmp_path / "src")
    runner = await start(db_settings, [("shelf", shelf)])
    try:
        assert "shelf_things" in await tables(engine)
        registry = runner.app[db_registry_key()]
        branches = registry.branches()
        status = await db.schema_status(engine, branches)
        assert status.complete and status.plugin("shelf") == db.BranchStatus(
            "shelf", "shelf_0002", "shelf_0002"
        )
        await registry.set_enabled("shelf", True, actor="test")
        assert registry.get("shelf").status == "active"
    finally:
        await runner.cleanup()


def db_registry_key() -> Any:
    from medianest.core.keys import REGISTRY

    return REGISTRY


async def test_a_plugin_whose_tables_are_behind_fails_and_the_portal_serves(
    db_settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    shelf = shelf_plugin(tmp_path / "src")
    branches = [
        *revisions.installed_branches(),
        revisions.Branch("shelf", tmp_path / "src" / "shelf" / "migrations"),
    ]
    # The plugin's first migration only: its tables are one migration behind this version.
    await db.migrate(engine, branches=[])
    await db.migrate(engine, "shelf_0001", branches=branches)
    runner = await start(db_settings, [("shelf", shelf)])
    try:
        registry = runner.app[db_registry_key()]
        await registry.set_enabled("shelf", True, actor="test")
        record = registry.get("shelf")
        assert record.status == "failed"
        assert record.error is not None
        assert "revision shelf_0001" in record.error and "shelf_0002" in record.error
        assert "run `medianest migrate`" in record.error
        # Nothing was upgraded behind the operator's back.
        status = await db.schema_status(engine, registry.branches())
        assert status.plugin("shelf") == db.BranchStatus("shelf", "shelf_0001", "shelf_0002")

        # Following the advice, then enabling it again, starts it.
        await db.migrate(engine, branches=registry.branches())
        await registry.set_enabled("shelf", True, actor="test")
        assert record.status == "active" and record.error is None
    finally:
        await runner.cleanup()


async def test_the_version_table_may_leave_out_a_core_revision_a_plugin_depends_on(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A plugin revision depending on the core's newest: Alembic keeps only the plugin's row,
    and the core is at its head all the same."""
    shelf_plugin(tmp_path / "src", "newest", depends_on=db.head_revision())
    branches = [revisions.Branch("newest", tmp_path / "src" / "newest" / "migrations")]
    await db.migrate(engine, branches=branches)
    assert await versions(engine) == ["newest_0002"]
    status = await db.schema_status(engine, branches)
    assert status.complete and status.current == db.head_revision()
    # Installed plugins' branches are left out here: their rows are not the core's.
    assert not status.unknown


async def test_the_tables_of_an_installed_plugin_behind_do_not_stop_the_start(
    db_settings: Settings, engine: AsyncEngine, make_client: MakeClient
) -> None:
    """The youtube table as a previous release left it (no revision of the plugin's): the
    portal starts, says so on /readyz, and the youtube plugin alone is failed."""
    await db.migrate(engine, branches=[])
    client = await make_client(db_settings)
    ready = await (await client.get("/readyz")).json()
    migrations = next(c for c in ready["components"] if c["name"] == "migrations")
    assert migrations["status"] == "ok"
    assert "youtube" in migrations["message"] and "medianest migrate" in migrations["message"]
    enabled = await client.post("/api/v1/plugins/youtube/enable")
    assert enabled.status == 200, await enabled.text()
    answer = await enabled.json()
    assert answer["status"] == "failed"
    assert "run `medianest migrate`" in answer["error"]
    assert (await client.get("/youtube")).status == 404
