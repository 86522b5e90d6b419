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
from conftest import MakeClient
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from medianest.app import create_app
from medianest.core import db
from medianest.core.models import Base, User
from medianest.core.settings import Settings
from medianest.requests.models import MediaItem, MediaRequest

TABLES = {
    "users",
    "sessions",
    "media_items",
    "requests",
    "approvals",
    "plugin_states",
    "audit_log",
    # 0002: accounts
    "user_identities",
    "api_tokens",
    "app_state",
    # 0003: requests
    "request_seasons",
    "media_availability",
    "season_availability",
    "notifications",
    # 0004: YouTube downloads
    "youtube_downloads",
}


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
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_the_models_declare_the_tables_the_portal_needs() -> None:
    assert set(Base.metadata.tables) == TABLES


async def test_upgrade_creates_every_table_and_index(engine: AsyncEngine) -> None:
    await db.migrate(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES
        indexes = await conn.run_sync(_indexes)
    for name, table in Base.metadata.tables.items():
        declared = {ix.name for ix in table.indexes}
        assert declared <= indexes[name], f"{name} lacks {declared - indexes[name]}"
    assert "ix_requests_status_created_at" in indexes["requests"]
    status = await db.schema_status(engine)
    assert status.up_to_date and status.current == db.head_revision() and not status.empty


def test_the_newest_migration_file_is_alembics_head() -> None:
    # The start-up check reads the head from the file names, without loading Alembic.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(db.alembic_config())
    assert scripts.get_heads() == [db.head_revision()]
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_")


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    engine: AsyncEngine,
) -> None:
    await db.migrate(engine)
    await db.migrate(engine, "base", downgrade=True)
    assert await tables(engine) == set()
    status = await db.schema_status(engine)
    assert status.current is None and not status.up_to_date

    await db.migrate(engine)
    assert await tables(engine) == TABLES
    assert (await db.schema_status(engine)).up_to_date


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    await db.migrate(engine)
    await db.migrate(engine)
    assert await tables(engine) == TABLES


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    """A model change without its migration (or the reverse) shows up here."""
    await db.migrate(engine)

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

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


async def start(settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(await create_app(settings))
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
