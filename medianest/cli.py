"""The ``medianest`` command: serve, worker, migrate, plugins, check-config, backup, restore."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click
from aiohttp import web
from sqlalchemy.exc import DBAPIError

from . import __version__
from .app import create_app
from .core import audit, db
from .core.auth import create_local_user
from .core.bus import Bus, RedisBus
from .core.cache import MemoryCache
from .core.crypto import SecretBox, generate_key, key_id, write_keyring
from .core.logs import AccessLogger, setup_logging
from .core.plugins import PluginNotFound, PluginRegistry, secret_paths
from .core.settings import Settings, SettingsError, key_file, load_keyring, load_settings
from .ops.rotation import Report, SecretFieldsOf, keys_in_use, reencrypt

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")


def _service_errors() -> tuple[type[Exception], ...]:
    """What an unreachable or misconfigured database or Redis raises. Redis's client is imported
    only when Redis is configured; until then none of its errors can happen."""
    redis_errors = sys.modules.get("redis.exceptions")
    found: tuple[type[Exception], ...] = (OSError, ConnectionError, DBAPIError)
    return found if redis_errors is None else (*found, redis_errors.RedisError)


def _redis(url: str) -> Redis:
    from redis.asyncio import Redis  # imported only when Redis is configured

    return Redis.from_url(url)


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
    except _service_errors() as exc:
        if isinstance(exc, DBAPIError):
            _fail(_describe(exc))
        _fail(f"could not reach a service MediaNest needs: {exc}")


def _setup_logging(level: str, settings: Settings | None = None) -> None:
    if settings is None:
        setup_logging(level, "text")
    else:
        setup_logging(level, settings.log_format, settings.log_levels)


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
    _setup_logging(settings.log_level, settings)
    try:
        web.run_app(
            _portal(settings),
            access_log_class=AccessLogger,
            host=settings.host,
            port=settings.port,
            print=lambda _: click.echo(
                f"MediaNest {__version__} on http://{settings.host}:{settings.port}/"
            ),
        )
    except db.SchemaError as exc:
        _fail(str(exc))
    except _service_errors() as exc:
        _fail(f"could not start: {_describe(exc)}")


async def _portal(settings: Settings) -> web.Application:
    app = await create_app(settings)
    app.on_startup.append(_settle_heap)
    return app


async def _settle_heap(app: web.Application) -> None:
    """What start-up made (modules, models, templates, plugins) lives as long as the process:
    set apart from the garbage collector, whose full collections then walk only what requests
    make (they paused a busy portal for up to 85 ms)."""
    gc.collect()
    gc.freeze()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to keep the demo's data in (default: a temporary folder removed at exit).",
)
def demo(host: str, port: int, data_dir: Path | None) -> None:
    """Try MediaNest on fake services: a populated portal, no account anywhere.

    Starts fake Plex, plex.tv, Sonarr, Radarr, Tautulli, TMDB and YouTube servers on
    127.0.0.1 and a MediaNest wired to them, with a local administrator and a local user
    whose passwords it prints. Reads no configuration and never touches a real
    installation's data. Ctrl-C stops everything.
    """
    from . import demo as demo_module  # the fakes are imported only when asked for

    _setup_logging("warning")
    try:
        demo_module.run(host, port, data_dir, echo=click.echo)
    except demo_module.DemoError as exc:
        _fail(str(exc))


@main.command()
@click.option("--concurrency", type=int, help="Jobs run at once (default 3).")
@click.option(
    "--metrics-port", type=int, help="Serve this worker's /metrics on this port (default: none)."
)
@click.option("--host", help="Address the metrics listen on (default 127.0.0.1).")
@click.pass_context
def worker(
    ctx: click.Context, concurrency: int | None, metrics_port: int | None, host: str | None
) -> None:
    """Run queued jobs (YouTube downloads) from Redis; run as many workers as you like.

    Needs MEDIANEST_REDIS_URL: without Redis, `medianest serve` runs the jobs itself.
    """
    settings = _settings(
        ctx, jobs_concurrency=concurrency, worker_metrics_port=metrics_port, host=host
    )
    if not settings.redis_url:
        _fail(
            "a worker needs Redis (MEDIANEST_REDIS_URL); without it `medianest serve` runs "
            "the jobs itself",
            code=2,
        )
    _setup_logging(settings.log_level, settings)
    _run(_work(settings))


async def _work(settings: Settings) -> None:
    from .core.cache import RedisCache
    from .core.jobs import RedisJobQueue
    from .core.ws import WebSocketHub
    from .ops.views import worker_metrics_app

    assert settings.redis_url is not None
    registry = PluginRegistry()
    registry.discover()
    await registry.collect()
    engine = db.create_engine(settings)
    redis = _redis(settings.redis_url)
    bus = RedisBus(redis)
    queue = RedisJobQueue(
        settings.redis_url, settings.jobs_concurrency, settings.jobs_sweep_interval
    )
    metrics: web.AppRunner | None = None
    try:
        await db.check_schema(engine, registry.branches())
        await bus.start()
        # Jobs publish their progress to the websockets of every web process, through the bus.
        hub = WebSocketHub(bus, 1, lambda _topic: False)
        box = SecretBox(load_keyring(settings), reload=lambda: load_keyring(settings, create=False))
        registry.jobs, registry.run_pollers = queue, False
        registry.bind(
            engine,
            RedisCache(redis),
            bus,
            hub.publish,
            installation_id=await db.installation_id(engine),
            box=box,
        )
        # Enabled plugins register their job types; changes made by an admin follow on the bus.
        await registry.load_states()
        click.echo(
            f"MediaNest {__version__} worker: {settings.jobs_concurrency} job(s) at once",
        )
        if settings.worker_metrics_port:
            metrics = web.AppRunner(worker_metrics_app(settings, queue), access_log=None)
            await metrics.setup()
            await web.TCPSite(metrics, settings.host, settings.worker_metrics_port).start()
        await queue.work()
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await registry.close()
        await queue.close()
        await bus.close()
        await redis.aclose()
        await engine.dispose()


@main.command()
@click.option(
    "--downgrade",
    "downgrade_to",
    metavar="REVISION",
    help="Downgrade to REVISION (e.g. base, or PLUGIN@base for one plugin's tables) instead "
    "of upgrading to the newest.",
)
@click.pass_context
def migrate(ctx: click.Context, downgrade_to: str | None) -> None:
    """Bring the database schema up to date (or down to a revision): MediaNest's tables and
    those of every installed plugin."""
    settings = _settings(ctx)

    async def run() -> db.SchemaStatus:
        registry = PluginRegistry()
        registry.discover()
        await registry.collect()
        branches = registry.branches()
        engine = db.create_engine(settings)
        try:
            if downgrade_to:
                await db.migrate(engine, downgrade_to, downgrade=True, branches=branches)
            else:
                await db.migrate(engine, branches=branches)
            return await db.schema_status(engine, branches)
        finally:
            await engine.dispose()

    status = _run(run())
    click.echo(f"database schema at revision {status.current or 'base'} (newest: {status.head})")
    for plugin in status.plugins:
        click.echo(
            f"tables of plugin {plugin.name} at revision {plugin.current or 'base'} "
            f"(newest: {plugin.head})"
        )


@main.command("create-admin")
@click.option("--username", prompt=True, help="Name of the new administrator.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of asking for it.",
)
@click.pass_context
def create_admin(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Create a local administrator (also the way back in if every admin is locked out)."""
    settings = _settings(ctx)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        _fail("the password must have at least 10 characters", code=2)

    async def run() -> None:
        engine = db.create_engine(settings)
        try:
            await db.check_schema(engine)
            try:
                user_id = await create_local_user(engine, username, password, role="admin")
            except ValueError as exc:
                _fail(str(exc), code=2)
            await audit.record(
                engine,
                "user.create",
                actor="cli",
                target=username,
                details={"role": "admin", "via": "create-admin", "id": str(user_id)},
            )
        finally:
            await engine.dispose()

    _run(run())
    click.echo(f"administrator {username!r} created; sign in at /login")


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
            for plugin in status.plugins:
                if plugin.current is None:
                    click.echo(
                        f"plugin {plugin.name}: its tables are not created yet "
                        "(`medianest migrate` creates them)"
                    )
                elif not plugin.up_to_date:
                    click.echo(
                        f"medianest: plugin {plugin.name} will not start: {plugin.problem()}",
                        err=True,
                    )
        else:
            _fail(db.schema_problem(status))
        if settings.redis_url:
            redis = _redis(settings.redis_url)
            try:
                await cast(Awaitable[bool], redis.ping())
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
    redis = _redis(settings.redis_url) if settings.redis_url else None
    try:
        await db.check_schema(engine)
        # With Redis the change reaches running processes at once; without it, at their next start.
        bus = RedisBus(redis) if redis is not None else Bus()

        async def no_websockets(*_: Any) -> None:
            return None

        box = SecretBox(load_keyring(settings))
        registry.bind(engine, MemoryCache(), bus, no_websockets, listen=False, box=box)
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


# --- keys -----------------------------------------------------------------------------------

_ENV_ROTATION = """\
the keys come from MEDIANEST_SECRET_KEY, which this command cannot change. To rotate:
  1. put a new key first in the comma-separated list, e.g.
       MEDIANEST_SECRET_KEY={new},<the keys you have now>
     and restart every MediaNest process with it;
  2. run `medianest rotate-key --reencrypt-only` (it re-encrypts every stored secret under
     the first key of the list);
  3. run `medianest rotate-key --prune` to check that no stored secret needs the old keys,
     then remove them from MEDIANEST_SECRET_KEY and restart."""


def _secret_paths_of(
    registry: PluginRegistry,
) -> Callable[[str, dict[str, Any]], list[str] | None]:
    def fields(name: str, settings: dict[str, Any]) -> list[str] | None:
        record = registry.records.get(name)
        if record is None or record.status == "import error":
            return None
        return secret_paths(record.settings_model, settings)

    return fields


def _warn_unreadable(report: Report) -> None:
    if report.unreadable:
        lines = "\n".join(f"  {where}" for where in report.unreadable)
        click.echo(
            f"medianest: {len(report.unreadable)} stored secret(s) cannot be decrypted with any "
            f"key and were left as they are; enter them again:\n{lines}",
            err=True,
        )


@main.command("rotate-key")
@click.option(
    "--prune",
    is_flag=True,
    help="Remove the keys that no stored secret needs any more (after a rotation).",
)
@click.option(
    "--reencrypt-only",
    is_flag=True,
    help="Re-encrypt every stored secret under the first key, without making a new key "
    "(for keys set in MEDIANEST_SECRET_KEY, or to finish an interrupted rotation).",
)
@click.pass_context
def rotate_key(ctx: click.Context, prune: bool, reencrypt_only: bool) -> None:
    """Encrypt every stored secret under a new key, without stopping MediaNest.

    Adds a new key at the top of the key file, re-encrypts every stored secret (services'
    API keys, users' Plex tokens) under it, and keeps the old keys until --prune. Running
    processes pick the new key up by themselves.
    """
    if prune and reencrypt_only:
        _fail("--prune and --reencrypt-only do not go together", code=2)
    settings = _settings(ctx)
    from_env = settings.secret_key is not None
    if from_env and not (prune or reencrypt_only):
        _fail(_ENV_ROTATION.format(new=generate_key()))

    async def run() -> None:
        registry = PluginRegistry()
        registry.discover()
        await registry.collect()
        fields_of = _secret_paths_of(registry)
        engine = db.create_engine(settings)
        try:
            await db.check_schema(engine)
            keys = load_keyring(settings)
            if prune:
                await _prune(engine, keys, fields_of)
                return
            if not reencrypt_only:
                keys = [generate_key(), *keys]
                write_keyring(key_file(settings), keys)
            box = SecretBox(keys)
            try:
                report = await reencrypt(engine, box, fields_of)
            except BaseException:
                if not reencrypt_only:
                    click.echo(
                        "medianest: the new key is in place but the stored secrets were not "
                        "re-encrypted; run `medianest rotate-key --reencrypt-only` to finish.",
                        err=True,
                    )
                raise
            await audit.record(
                engine,
                "secrets.reencrypt" if reencrypt_only else "secrets.rotate",
                actor="cli",
                details={"key": box.current_id, "reencrypted": report.reencrypted},
            )
        finally:
            await engine.dispose()
        _warn_unreadable(report)
        click.echo(
            f"{report.reencrypted} stored secret(s) re-encrypted under key {box.current_id}"
            + (f" ({report.was_clear} of them were stored in clear)" if report.was_clear else "")
        )
        if not reencrypt_only:
            click.echo(
                f"the new key is first in {key_file(settings)}; running processes use it "
                "without a restart. Back up the key file; `medianest rotate-key --prune` "
                "then removes the old key(s)."
            )

    async def _prune(engine: Any, keys: list[str], fields_of: SecretFieldsOf) -> None:
        box = SecretBox(keys)
        report = await keys_in_use(engine, box, fields_of)
        _warn_unreadable(report)
        older = sum(n for kid, n in report.by_key.items() if kid != box.current_id)
        if older:
            _fail(
                f"{older} stored secret(s) still need an older key; run "
                "`medianest rotate-key --reencrypt-only` to re-encrypt them under the current "
                f"key {box.current_id} first"
            )
        if report.was_clear:
            click.echo(
                f"medianest: {report.was_clear} secret(s) are stored in clear; "
                "`medianest rotate-key --reencrypt-only` encrypts them",
                err=True,
            )
        if len(keys) == 1:
            click.echo(f"nothing to prune: the only key is {box.current_id}")
            return
        dropped = ", ".join(key_id(k) for k in keys[1:])
        if from_env:
            click.echo(
                f"no stored secret needs the older key(s) ({dropped}): remove them from "
                "MEDIANEST_SECRET_KEY, keeping only the first, and restart"
            )
            return
        write_keyring(key_file(settings), keys[:1])
        await audit.record(engine, "secrets.prune", actor="cli", details={"removed": dropped})
        click.echo(
            f"removed {len(keys) - 1} old key(s) ({dropped}); the key now in use is "
            f"{box.current_id}"
        )

    _run(run())


# --- backups --------------------------------------------------------------------------------


class _Status:
    """A status line on standard error that rewrites itself, shown only on a terminal (a cron
    job or a pipe gets no progress, only the result)."""

    def __init__(self) -> None:
        self.shown = sys.stderr.isatty()
        self._last = 0.0
        self._width = 0

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if not self.shown or now - self._last < 0.1:
            return
        self._last = now
        click.echo("\r" + line.ljust(self._width), nl=False, err=True)
        self._width = len(line)

    def clear(self) -> None:
        if self.shown and self._width:
            click.echo("\r" + " " * self._width + "\r", nl=False, err=True)
            self._width = 0


def _run_backup(coro: Coroutine[Any, Any, T], status: _Status) -> T:
    from .ops import backup

    try:
        return _run(coro)
    except backup.BackupError as exc:
        status.clear()
        _fail(str(exc))
    finally:
        status.clear()


@main.command("backup")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Folder to write the archive in (default: DATA_DIR/backups; it is named after the "
    "time), or the archive's file name, ending in .tar.gz.",
)
@click.option(
    "--verify",
    "to_verify",
    metavar="ARCHIVE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Back up nothing: prove that ARCHIVE restores, into a throwaway database, with the "
    "row count of every table as its manifest records.",
)
@click.option(
    "--keep-daily",
    type=click.IntRange(min=1),
    metavar="N",
    help="After the backup, keep the newest archive of each of the last N days that have one "
    "and delete older archives of the folder that no --keep rule keeps.",
)
@click.option(
    "--keep-weekly",
    type=click.IntRange(min=1),
    metavar="N",
    help="Also keep the newest archive of each of N weeks before the daily ones.",
)
@click.pass_context
def backup_command(
    ctx: click.Context,
    output: Path | None,
    to_verify: Path | None,
    keep_daily: int | None,
    keep_weekly: int | None,
) -> None:
    """Write a compressed archive of the database, safe while MediaNest runs.

    The archive holds a manifest (schema revision, row counts, checksums) and the database;
    never the key that decrypts its stored secrets: back DATA_DIR/secret.key (or
    MEDIANEST_SECRET_KEY) up separately.
    """
    from .ops import backup  # tarfile and the rest only for these commands

    if to_verify is not None and (output or keep_daily or keep_weekly):
        _fail("--verify goes alone: it checks an archive and writes none", code=2)
    settings = _settings(ctx)
    status = _Status()
    if to_verify is not None:
        result = _run_backup(backup.verify(settings, to_verify, status), status)
        click.echo(f"{to_verify} restores: {backup.describe(result.manifest)}")
        click.echo("every table has the row count its manifest records")
        if result.migrated_from:
            click.echo(f"its schema migrates from {result.migrated_from} to {db.head_revision()}")
        return
    path, manifest = _run_backup(backup.create_backup(settings, output, status), status)
    tables, revision = manifest["tables"], manifest["schema_revision"]
    click.echo(
        f"backup written to {path} ({backup.megabytes(path.stat().st_size)}; "
        f"{sum(tables.values())} rows in {len(tables)} tables, schema {revision})"
    )
    if keep_daily or keep_weekly:
        removed = backup.prune(
            path.parent, keep_daily=keep_daily or 0, keep_weekly=keep_weekly or 0
        )
        if removed:
            click.echo(f"removed {len(removed)} older archive(s) no --keep rule keeps")


@main.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace a database that already holds data (everything in it is lost).",
)
@click.pass_context
def restore(ctx: click.Context, archive: Path, force: bool) -> None:
    """Restore ARCHIVE (made by `medianest backup`) into the configured database.

    The archive is checked in full first (manifest, checksums); the database must be empty
    unless --force. An archive of an older MediaNest is migrated to this version's schema, one
    of a newer MediaNest is refused. Stop MediaNest first, and put back the key the archive's
    secrets were encrypted with (DATA_DIR/secret.key or MEDIANEST_SECRET_KEY).
    """
    from .ops import backup

    settings = _settings(ctx)
    status = _Status()

    async def run() -> backup.Restored:
        registry = PluginRegistry()
        registry.discover()
        await registry.collect()
        return await backup.restore(
            settings,
            archive,
            force=force,
            secret_fields_of=_secret_paths_of(registry),
            progress=status,
        )

    result = _run_backup(run(), status)
    click.echo(
        f"restored {archive} into {backup.database_label(settings)}: "
        f"{backup.describe(result.manifest)}"
    )
    if result.migrated_from:
        click.echo(f"schema migrated from {result.migrated_from} to {db.head_revision()}")
    if result.unreadable:
        where = "\n".join(f"  {line}" for line in result.unreadable)
        reason = result.key_problem or "the configured key is not the one they were encrypted with"
        click.echo(
            f"medianest: {len(result.unreadable)} stored secret(s) cannot be decrypted: "
            f"{reason}. Put back the key kept with this backup ({key_file(settings)} or "
            f"MEDIANEST_SECRET_KEY), or enter these secrets again:\n{where}",
            err=True,
        )
