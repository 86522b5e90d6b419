"""The ``medianest`` command: serve, migrate, plugins, check-config."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from . import __version__
from .core import db
from .core.app import create_app
from .core.bus import Bus, RedisBus
from .core.cache import MemoryCache
from .core.plugins import PluginNotFound, PluginRegistry
from .core.settings import Settings, SettingsError, load_settings

T = TypeVar("T")

# What an unreachable or misconfigured database or Redis raises.
_SERVICE_ERRORS = (OSError, ConnectionError, RedisError, DBAPIError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError):
        # The driver's own message ("database ... does not exist"), not SQLAlchemy's wrapping.
        return f"database error: {exc.orig if exc.orig is not None else exc}"
    return str(exc)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"medianest: {message}", err=True)
    sys.exit(code)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return load_settings(
            ctx.obj["config"], **{k: v for k, v in overrides.items() if v is not None}
        )
    except SettingsError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        _fail(f"the configuration is not valid:\n{lines}", code=2)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except db.SchemaError as exc:
        _fail(str(exc))
    except _SERVICE_ERRORS as exc:
        if isinstance(exc, DBAPIError):
            _fail(_describe(exc))
        _fail(f"could not reach a service MediaNest needs: {exc}")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic narrates every connection at INFO; its upgrades are still logged at WARNING.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


@click.group()
@click.version_option(__version__, prog_name="medianest")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MEDIANEST_CONFIG",
    help="TOML file of settings (environment variables MEDIANEST_* override it).",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """MediaNest: one portal over Plex, Sonarr, Radarr, Tautulli, TMDB and YouTube."""
    ctx.obj = {"config": config}


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the web portal."""
    settings = _settings(ctx, host=host, port=port)
    _setup_logging(settings.log_level)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=lambda _: click.echo(
                f"MediaNest {__version__} on http://{settings.host}:{settings.port}/"
            ),
        )
    except db.SchemaError as exc:
        _fail(str(exc))
    except _SERVICE_ERRORS as exc:
        _fail(f"could not start: {_describe(exc)}")


@main.command()
@click.option(
    "--downgrade",
    "downgrade_to",
    metavar="REVISION",
    help="Downgrade to REVISION (e.g. base) instead of upgrading to the newest.",
)
@click.pass_context
def migrate(ctx: click.Context, downgrade_to: str | None) -> None:
    """Bring the database schema up to date (or down to a revision)."""
    settings = _settings(ctx)

    async def run() -> db.SchemaStatus:
        engine = db.create_engine(settings)
        try:
            if downgrade_to:
                await db.migrate(engine, downgrade_to, downgrade=True)
            else:
                await db.migrate(engine)
            return await db.schema_status(engine)
        finally:
            await engine.dispose()

    status = _run(run())
    click.echo(f"database schema at revision {status.current or 'base'} (newest: {status.head})")


@main.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the settings and reach the database and Redis."""
    settings = _settings(ctx)
    click.echo(
        f"settings are valid; database {settings.database_url.split('://')[0]}, "
        f"cache {'redis' if settings.redis_url else 'in memory'}"
    )

    async def run() -> None:
        engine = db.create_engine(settings)
        try:
            status = await db.schema_status(engine)
        finally:
            await engine.dispose()
        if status.empty:
            click.echo("database: new and empty; it is created at the first start")
        elif status.up_to_date:
            click.echo(f"database: reachable, schema current ({status.head})")
        else:
            _fail(db.schema_problem(status))
        if settings.redis_url:
            redis = Redis.from_url(settings.redis_url)
            try:
                await redis.ping()
            finally:
                await redis.aclose()
            click.echo("redis: reachable")

    _run(run())


@main.group()
def plugins() -> None:
    """List, enable and disable integrations."""


async def _with_registry(
    settings: Settings, action: Callable[[PluginRegistry], Awaitable[None]]
) -> None:
    registry = PluginRegistry()
    registry.discover()
    await registry.collect()
    engine = db.create_engine(settings)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    try:
        await db.check_schema(engine)
        # With Redis the change reaches running processes at once; without it, at their next start.
        bus = RedisBus(redis) if redis is not None else Bus()

        async def no_websockets(*_: Any) -> None:
            return None

        registry.bind(engine, MemoryCache(), bus, no_websockets, listen=False)
        await registry.load_states(activate=False)
        await action(registry)
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


@plugins.command("list")
@click.pass_context
def plugins_list(ctx: click.Context) -> None:
    """Show every installed integration and whether it is enabled."""
    settings = _settings(ctx)

    async def show(registry: PluginRegistry) -> None:
        for record in sorted(registry.records.values(), key=lambda r: r.name):
            state = "enabled" if record.enabled else "disabled"
            if record.status == "import error":
                state = f"broken ({record.error})"
            click.echo(f"{record.name:<16} {state:<10} {record.version:<10} {record.description}")

    _run(_with_registry(settings, show))


def _toggle(ctx: click.Context, name: str, enabled: bool) -> None:
    settings = _settings(ctx)

    async def apply(registry: PluginRegistry) -> None:
        try:
            await registry.set_enabled(name, enabled, actor="cli")
        except PluginNotFound:
            names = ", ".join(sorted(registry.records))
            _fail(f"no plugin named {name!r}; installed: {names}")
        click.echo(f"{name} {'enabled' if enabled else 'disabled'}")

    _run(_with_registry(settings, apply))


@plugins.command("enable")
@click.argument("name")
@click.pass_context
def plugins_enable(ctx: click.Context, name: str) -> None:
    """Enable the integration NAME."""
    _toggle(ctx, name, True)


@plugins.command("disable")
@click.argument("name")
@click.pass_context
def plugins_disable(ctx: click.Context, name: str) -> None:
    """Disable the integration NAME."""
    _toggle(ctx, name, False)
