"""The plugin registry: discovery, per-plugin state, runtime toggles and safe hook calls.

Plugins are found through the ``medianest.plugins`` entry-point group, the built-in ones
included. Each plugin has an explicit state (active, inactive, failed, import error). An admin's
toggle or settings change is written to the database and announced on the bus; every process
then applies it to itself (an unload/setup cycle, never a restart).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib.metadata
import logging
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import pluggy
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import MetaData, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from . import audit, auth, hookspecs
from .auth import CORE_PERMISSIONS, PermissionSpec
from .bus import Bus
from .cache import Cache
from .coordinator import coordinated, default_template_dirs
from .crypto import DecryptionError, SecretBox, is_encrypted
from .db import schema_status, writing
from .extensions import (
    Event,
    HealthResult,
    MediaNotFound,
    Metric,
    PluginContext,
    Poller,
    Publisher,
    Route,
    SignInProvider,
    Widget,
    resolve,
)
from .jobs import JobQueue, PollerRunner
from .models import PluginState
from .revisions import ENTRY_POINT_GROUP, Branch, migrations_folder

log = logging.getLogger(__name__)

BUS_CHANNEL = "plugins"
# How long shutdown waits for the plugins to be told of the last events.
EVENTS_GRACE_SECONDS = 5.0

Status = Literal["active", "inactive", "failed", "import error"]

P = ParamSpec("P")
R = TypeVar("R")

# A runtime hook, named by its spec (``hookspecs.search_media``): the plugin's context first,
# which MediaNest passes, then what the caller passes by name. mypy checks a call's arguments
# against the spec and knows what its answers are (``None`` is no answer: it is left out).
Hook = Callable[Concatenate[PluginContext, P], R | None]


class PluginNotFound(LookupError):
    """No plugin of that name is installed."""


class PluginSecretsUnreadable(Exception):
    """A plugin's stored secrets do not decrypt with the keys MediaNest has now."""


class PluginSettingsInvalid(ValueError):
    """Settings that the plugin's settings model refuses; ``errors`` says which and why."""

    def __init__(
        self, plugin: str, errors: list[dict[str, Any]], message: str | None = None
    ) -> None:
        super().__init__(message or f"the settings of {plugin} are not valid; see details")
        self.errors = errors


@dataclass
class PluginRecord:
    """One installed plugin, as the admin page shows it."""

    name: str
    module: ModuleType | None
    description: str = ""
    version: str = ""
    enabled: bool = False
    status: Status = "inactive"
    error: str | None = None
    settings_model: type[BaseModel] | None = None
    raw_settings: dict[str, Any] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    widgets: list[Widget] = field(default_factory=list)
    pollers: list[Poller] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    template_dirs: list[Path] = field(default_factory=list)
    sign_in_providers: list[SignInProvider] = field(default_factory=list)
    # Its own tables (register_tables) and the folder of their migrations (its package's
    # ``migrations``, known even when it fails to import).
    tables: MetaData | None = None
    migrations: Path | None = None
    permissions: list[PermissionSpec] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    # The last failure of each hook, shown on the admin page until the hook succeeds again.
    hook_errors: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "active"

    def summary(self) -> dict[str, Any]:
        """What the admin page and the API say of it, and what a change announces."""
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "enabled": self.enabled,
            "status": self.status,
            "error": self.error,
            "hook_errors": dict(self.hook_errors),
        }


def _describe(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


class PluginRegistry:
    """Owns the pluggy manager and every plugin's state in this process."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._contexts: dict[str, PluginContext] = {}
        self._pollers = PollerRunner()
        self._topic_owner: dict[str, str] = {}
        # Counts activations and deactivations: what is active, with which context, changed.
        self.changes = 0
        self._listen = False
        # Tells this process's own announcements apart from other processes' on the bus.
        self._origin = uuid.uuid4().hex
        # Told when a plugin reports a film or series changed (see PluginContext.media_changed).
        self.media_listener: Callable[[str, Mapping[str, str]], Awaitable[None]] | None = None
        # The job queue handed to plugins (plugin.jobs); a `medianest worker` process runs no
        # pollers, only jobs.
        self.jobs: JobQueue | None = None
        self.run_pollers = True
        # Events waiting for the plugins' handle_event (see emit), and the task telling them.
        self._events: collections.deque[Event] = collections.deque()
        self._telling: asyncio.Task[None] | None = None

    def bind(
        self,
        engine: AsyncEngine,
        cache: Cache,
        bus: Bus,
        publish: Publisher,
        *,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        listen: bool = True,
        installation_id: str = "",
        box: SecretBox | None = None,
    ) -> None:
        """Hand the registry the resources opened at start-up; plugins are activated after.

        ``on_change`` is told of each plugin whose state this process has just applied.
        ``listen=False`` (the command line) announces changes without applying them here.
        ``box`` encrypts the secret fields of plugins' settings before they are stored.
        """
        self._engine = engine
        self._box = box
        self._cache = cache
        self._bus = bus
        self._publish = publish
        self._on_change = on_change
        self._listen = listen
        self._installation_id = installation_id
        if listen:
            bus.subscribe(BUS_CHANNEL, self._on_bus_message)

    # --- discovery --------------------------------------------------------------------

    def discover(self, extra: Iterable[tuple[str, ModuleType | object]] = ()) -> None:
        """Register every plugin of the entry-point group, then ``extra`` (name, module) pairs.

        A plugin that fails to import or to register is recorded with its error, not fatal.
        """
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self.records:
                continue
            version = ep.dist.version if ep.dist is not None else ""
            try:
                module = ep.load()
            except Exception as exc:
                log.exception("plugin %s failed to import", ep.name)
                self.records[ep.name] = PluginRecord(
                    name=ep.name,
                    module=None,
                    version=version,
                    status="import error",
                    error=f"{type(exc).__name__}: {exc}",
                    migrations=migrations_folder(ep.module),
                )
                continue
            self._register(ep.name, module, version)
        for name, module in extra:
            self._register(name, module, "")

    def _register(self, name: str, module: Any, version: str) -> None:
        record = PluginRecord(
            name=name, module=module, version=version, description=_describe(module)
        )
        if isinstance(module, ModuleType) and hasattr(module, "__path__"):
            record.migrations = migrations_folder(module.__name__)
        self.records[name] = record
        try:
            self.pm.register(module, name=name)
            self.pm.check_pending()
            _refuse_wrappers(self.pm, name, module)
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            record.status, record.error = "import error", str(exc)
            log.error("plugin %s is invalid: %s", name, exc)

    async def collect(self) -> None:
        """Ask every registered plugin for its routes, widgets, pollers, topics and models."""
        for record in self.records.values():
            if record.status == "import error":
                continue
            record.routes = await self._registered(record, hookspecs.register_routes)
            record.widgets = await self._registered(record, hookspecs.register_widgets)
            record.pollers = await self._registered(record, hookspecs.register_pollers)
            record.topics = await self._registered(record, hookspecs.register_ws_topics)
            record.template_dirs = await self._registered(record, hookspecs.register_template_dirs)
            record.sign_in_providers = await self._registered(
                record, hookspecs.register_sign_in_providers
            )
            model = await self._registration(record, hookspecs.register_settings_model)
            record.settings_model = model if isinstance(model, type) else None
            tables = await self._registration(record, hookspecs.register_tables)
            record.tables = tables if isinstance(tables, MetaData) else None
            record.permissions = await self._registered(record, hookspecs.register_permissions)
            record.metrics = await self._registered(record, hookspecs.register_metrics)
            # A live widget names its coordinator: its topic and poller follow from it.
            record.widgets, record.pollers, record.topics = coordinated(
                record.name, record.widgets, record.pollers, record.topics
            )
            record.template_dirs = record.template_dirs or default_template_dirs(record.module)
            for topic in record.topics:
                self._topic_owner[topic] = record.name
        self._check_permissions()

    def _check_permissions(self) -> None:
        """A plugin's permission named like another's is left out (the first one stands), and
        a route that needs a permission nobody declares is shown as a failure."""
        taken = {p.name: "medianest" for p in CORE_PERMISSIONS}
        for record in self.records.values():
            declared: list[PermissionSpec] = []
            problems = []
            for spec in record.permissions:
                owner = taken.setdefault(spec.name, record.name)
                if owner != record.name or spec.name in {d.name for d in declared}:
                    problems.append(f"the permission {spec.name!r} is already {owner}'s")
                else:
                    declared.append(spec)
            record.permissions = declared
            self._note_problems(record, "register_permissions", problems)
        for record in self.records.values():
            problems = [
                f"{route.method} {route.path} needs the permission {route.access!r}, which "
                "neither MediaNest nor an installed plugin declares (it is closed)"
                for route in record.routes
                if route.access not in ("public", "user") and route.access not in taken
            ]
            self._note_problems(record, "register_routes", problems)

    def _note_problems(self, record: PluginRecord, hook: str, problems: list[str]) -> None:
        if problems:
            message = "; ".join(problems)
            self.note_failure(record.name, hook, ValueError(message))
            log.error("plugin %s: %s", record.name, message)

    def branches(self) -> list[Branch]:
        """The migrations of every installed plugin that has some."""
        return [
            Branch(
                record.name,
                record.migrations,
                frozenset(record.tables.tables) if record.tables is not None else None,
            )
            for record in self.records.values()
            if record.migrations is not None
        ]

    def permissions(self) -> list[PermissionSpec]:
        """What may be granted: the core's permissions, then those of every installed plugin
        (enabled or not; a plugin that fails to import declares none)."""
        found = list(CORE_PERMISSIONS)
        for record in self.records.values():
            if record.status != "import error":
                found.extend(record.permissions)
        return found

    def default_permissions(self) -> frozenset[str]:
        """The permissions a new user is given."""
        return frozenset(p.name for p in self.permissions() if p.default)

    def permission_label(self, name: str) -> str:
        return next((p.label for p in self.permissions() if p.name == name), name)

    def implementers(self, hook: str) -> list[str]:
        """The installed plugins (enabled or not) that implement ``hook``, to name in messages
        ("set up the tmdb integration") when none of them answered."""
        return [r.name for r in self.records.values() if self._impl(r, hook) is not None]

    async def _registered(self, record: PluginRecord, hook: Callable[[], list[R]]) -> list[R]:
        return list(await self._registration(record, hook) or [])

    async def _registration(self, record: PluginRecord, hook: Callable[[], R]) -> R | None:
        """What one plugin answers to a ``register_*`` hook; ``None`` if it lacks it or raised."""
        impl = self._impl(record, hook.__name__)
        if impl is None:
            return None
        answer: R | None = await self._call_impl(record, impl, hook.__name__, {})
        return answer

    # --- state ----------------------------------------------------------------------

    def get(self, name: str) -> PluginRecord:
        try:
            return self.records[name]
        except KeyError:
            raise PluginNotFound(name) from None

    def is_active(self, name: str) -> bool:
        record = self.records.get(name)
        return record is not None and record.active

    def topic_owner(self, topic: str) -> str | None:
        return self._topic_owner.get(topic)

    def active_records(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.active]

    def context(self, name: str) -> PluginContext:
        ctx = self._contexts.get(name)
        if ctx is None:
            ctx = self._new_context(name, self._settings_object(self.get(name)))
            self._contexts[name] = ctx
        return ctx

    def _new_context(self, name: str, settings: Any) -> PluginContext:
        return PluginContext(
            name=name,
            settings=settings,
            cache=self._cache,
            db=self._engine,
            _publish=self._publish,
            installation_id=self._installation_id,
            _hook_caller=functools.partial(self._call_others, name),
            _secret_reader=functools.partial(self._sign_in_secret, name),
            _media_listener=self._media_changed,
            jobs=self.jobs,
        )

    async def _media_changed(self, media_type: str, ids: Mapping[str, str]) -> None:
        if self.media_listener is not None:
            await self.media_listener(media_type, ids)

    async def _call_others(
        self, caller: str, hook: str, kwargs: dict[str, Any]
    ) -> list[tuple[str, Any]]:
        """What a plugin's ``call_hook`` does: ``hook`` on every other active plugin.

        Plugins name hooks by strings (``medianest.core.hookspecs`` is not theirs to import),
        so the spec is found and checked here. A first-result hook stops at the first answer,
        as it does for the core: at most one pair comes back.
        """
        found: pluggy.HookCaller | None = getattr(self.pm.hook, hook, None)
        if found is None or found.spec is None:
            raise TypeError(f"MediaNest has no hook named {hook!r}")
        _check_arguments(found, kwargs)
        module = self.get(caller).module
        others = self.pm.subset_hook_caller(hook, [module]) if module is not None else found
        return await self._run(others, kwargs, first=_is_first_result(found))

    async def _sign_in_secret(
        self, name: str, provider: str, details: dict[str, Any]
    ) -> str | None:
        """What a plugin's ``sign_in_secret`` does: only for its own sign-in providers."""
        if provider not in {p.name for p in self.get(name).sign_in_providers}:
            raise PermissionError(f"{name} offers no sign-in named {provider!r}")
        if self._box is None:
            return None
        return await auth.identity_secret(self._engine, self._box, provider, details)

    def _settings_object(self, record: PluginRecord) -> Any:
        if record.settings_model is None:
            return dict(record.raw_settings)
        values = self._decrypted(record.name, record.settings_model, record.raw_settings)
        try:
            return record.settings_model.model_validate(values)
        except ValidationError:
            # Saved settings no longer fit the model (the plugin changed): start from defaults.
            log.warning("stored settings of %s do not fit its model; using defaults", record.name)
            return record.settings_model.model_validate({})

    async def load_states(self, *, activate: bool = True) -> None:
        """Read every plugin's saved state and (unless told not to) activate the enabled ones."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(PluginState.__table__))).mappings().all()
        saved = {row["name"]: row for row in rows}
        for record in self.records.values():
            row = saved.get(record.name)
            if row is not None:
                record.enabled = bool(row["enabled"])
                record.raw_settings = dict(row["settings"] or {})
            if activate:
                await self._apply(record)

    async def refresh(self, name: str) -> None:
        """Re-read one plugin's saved state and apply it to this process."""
        record = self.records.get(name)
        if record is None:
            return
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(PluginState.__table__).where(PluginState.name == name)))
                .mappings()
                .first()
            )
        enabled = bool(row["enabled"]) if row else False
        settings = dict(row["settings"] or {}) if row else {}
        settings_changed = settings != record.raw_settings
        record.enabled, record.raw_settings = enabled, settings
        if settings_changed and record.active:
            await self._deactivate(record)
        elif settings_changed:
            self._contexts.pop(name, None)  # built from the old settings
        await self._apply(record)

    async def _apply(self, record: PluginRecord) -> None:
        if record.status == "import error":
            return
        if record.enabled and not record.active:
            await self._activate(record)
        elif not record.enabled and record.status != "inactive":
            await self._deactivate(record)

    async def _schema_problem(self, record: PluginRecord) -> str | None:
        """Why the plugin's tables do not fit this version of it, if they do not."""
        if record.migrations is None:
            return None
        (branch,) = [b for b in self.branches() if b.name == record.name]
        status = (await schema_status(self._engine, [branch])).plugin(record.name)
        return None if status is None or status.up_to_date else status.problem()

    async def _activate(self, record: PluginRecord) -> None:
        self.changes += 1
        self._contexts.pop(record.name, None)
        problem = await self._schema_problem(record)
        if problem is not None:
            log.error("plugin %s cannot start: %s", record.name, problem)
            record.status, record.error = "failed", problem
            return
        try:
            ctx = self.context(record.name)
        except PluginSecretsUnreadable as exc:
            log.error("plugin %s cannot start: %s", record.name, exc)
            record.status, record.error = "failed", str(exc)
            return
        try:
            impl = self._impl(record, "activate")
            if impl is not None:
                await _invoke(impl, {"plugin": ctx})
        except Exception as exc:
            log.exception("plugin %s failed to activate", record.name)
            record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
            await ctx.stop_tasks()  # what it started before it failed
            return
        record.status, record.error = "active", None
        if self.run_pollers:
            self._pollers.start(ctx, record.pollers)
        log.info("plugin %s active", record.name)

    async def _deactivate(self, record: PluginRecord) -> None:
        self.changes += 1
        was_active = record.active
        record.status, record.error = "inactive", None
        await self._pollers.stop(record.name)
        running = self._contexts.get(record.name)
        if running is not None:
            await running.stop_tasks()
        if was_active:
            impl = self._impl(record, "deactivate")
            if impl is not None:
                context = self.context(record.name)
                await self._call_impl(record, impl, "deactivate", {"plugin": context})
            log.info("plugin %s inactive", record.name)
        ctx = self._contexts.pop(record.name, None)
        if ctx is not None:
            await ctx.close_clients()

    async def close(self) -> None:
        """Tell the plugins of the last events, then deactivate every one (at shutdown)."""
        if self._telling is not None:
            await asyncio.wait([self._telling], timeout=EVENTS_GRACE_SECONDS)
            self._telling.cancel()
        for record in self.records.values():
            if record.active:
                await self._deactivate(record)
        await self._pollers.close()

    def running_pollers(self, name: str) -> int:
        return self._pollers.running(name)

    # --- changes made by an admin ----------------------------------------------------------

    async def set_enabled(
        self, name: str, enabled: bool, *, actor: str = "system", address: str | None = None
    ) -> PluginRecord:
        """Enable or disable a plugin everywhere, persistently."""
        record = self.get(name)
        was_enabled = record.enabled
        await self._save(name, {"enabled": enabled})
        await self._audit(actor, "plugin.enable" if enabled else "plugin.disable", name, address)
        await self._announce(name)
        if enabled != was_enabled:
            self.emit("plugin.enabled" if enabled else "plugin.disabled", {"name": name})
        return record

    async def save_settings(
        self,
        name: str,
        data: dict[str, Any],
        *,
        keep_secrets: Iterable[str] | Mapping[str, str] = (),
        actor: str = "system",
        address: str | None = None,
    ) -> PluginRecord:
        """Validate and store a plugin's settings, then re-activate it everywhere.

        Secret fields are stored encrypted. ``keep_secrets`` names secret fields whose stored
        value stays as it is (a form sends back the mask it was shown, not the secret).
        """
        record = self.get(name)
        model = record.settings_model
        if model is not None:
            # Where each kept secret is now -> where it is stored (an instance may have moved).
            sources = (
                dict(keep_secrets)
                if isinstance(keep_secrets, Mapping)
                else {path: path for path in keep_secrets}
            )
            keep = {p: sources[p] for p in secret_paths(model, data) if p in sources}
            # The stored row, not this process's copy, which may predate a key rotation.
            stored = await self._stored_settings(name) if keep else {}
            if keep and self._box is not None:
                self._box.reload()  # "the current key" is the key file's first, as it is now
            # A kept secret stays as stored when it is under the current key (so that an
            # unchanged form changes nothing), and when it no longer decrypts (the plugin
            # keeps showing why); it is validated as what it decrypts to.
            as_stored: dict[str, str] = {}
            for path, source in sorted(keep.items()):
                value = get_path(stored, source)
                if not isinstance(value, str) or value == "":
                    continue
                try:
                    plain = self._decrypt_one(name, source, value)
                except PluginSecretsUnreadable:
                    plain = as_stored[path] = value
                else:
                    # Bound to where it is stored: kept as is only if it has not moved.
                    current = self._box is not None and not self._box.needs_rotation(value)
                    if is_encrypted(value) and current and source == path:
                        as_stored[path] = value
                data = set_path(data, path, plain)
            try:
                proposed = model.model_validate(data)
            except ValidationError as exc:
                raise PluginSettingsInvalid(name, _validation_errors(exc)) from None
            await self._check_connection(record, proposed)
            data = _plain(proposed)
            for path in secret_paths(model, data):
                if path in as_stored:
                    data = set_path(data, path, as_stored[path])
                elif get_path(data, path) not in (None, ""):
                    encrypted = self._encrypt(name, path, str(get_path(data, path)))
                    data = set_path(data, path, encrypted)
        await self._save(name, {"settings": data})
        # Record which settings changed, never their values: some are secrets.
        await self._audit(actor, "plugin.settings", name, address, {"fields": sorted(data)})
        await self._announce(name)
        return record

    async def _check_connection(self, record: PluginRecord, proposed: BaseModel) -> None:
        """Try the proposed settings for real; refuse them if a service is down or refuses."""
        impl = self._impl(record, "check_connection")
        if impl is None:
            return
        try:
            ctx = self.context(record.name)
        except PluginSecretsUnreadable:
            # The settings in force no longer decrypt (the admin is entering them again):
            # the test runs in a context of the proposed settings alone.
            ctx = self._new_context(record.name, proposed)
        try:
            result = await _invoke(impl, {"plugin": ctx, "settings": proposed})
        except Exception as exc:
            log.exception("plugin %s failed to test its connection", record.name)
            result = HealthResult(record.name, "down", f"the connection test failed: {exc}")
        results = result if isinstance(result, list) else [result] if result else []
        failed = [r for r in results if r.status in ("down", "degraded")]
        if failed:
            raise PluginSettingsInvalid(
                record.name,
                [{"field": r.name, "message": r.message or r.status} for r in failed],
                message=f"{record.name} could not connect with these settings; nothing was saved",
            )

    def _encrypt(self, name: str, field_name: str, value: str) -> str:
        if self._box is None:
            raise RuntimeError("the registry has no key to encrypt plugin secrets with")
        return self._box.encrypt(value, associated=secret_binding(name, field_name))

    def _decrypted(
        self, name: str, model: type[BaseModel], stored: dict[str, Any]
    ) -> dict[str, Any]:
        """``stored`` settings with their secret fields decrypted.

        A secret stored in clear (saved before secrets were encrypted) is used as it is;
        ``medianest rotate-key --reencrypt-only`` encrypts it.
        """
        values = dict(stored)
        problems = []
        for path in secret_paths(model, values):
            value = get_path(values, path)
            if not isinstance(value, str) or not is_encrypted(value):
                continue
            try:
                if self._box is None:
                    raise DecryptionError("no keyring is loaded")
                plain = self._box.decrypt(value, associated=secret_binding(name, path))
            except DecryptionError as exc:
                problems.append(f"{path}: {exc}")
            else:
                values = set_path(values, path, plain)
        if problems:
            raise PluginSecretsUnreadable(
                "its secrets cannot be decrypted with the current keys"
                f" ({'; '.join(problems)}). Enter them again in its settings, or restore the"
                " key file they were saved with."
            )
        return values

    def _decrypt_one(self, name: str, path: str, value: str) -> str:
        if not is_encrypted(value):
            return value
        try:
            if self._box is None:
                raise DecryptionError("no keyring is loaded")
            return self._box.decrypt(value, associated=secret_binding(name, path))
        except DecryptionError as exc:
            raise PluginSecretsUnreadable(f"{path}: {exc}") from None

    async def _stored_settings(self, name: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            stored = (
                await conn.execute(select(PluginState.settings).where(PluginState.name == name))
            ).scalar()
        return dict(stored or {})

    async def _announce(self, name: str) -> None:
        # Apply the change here first, so that the answer to the admin already shows it
        # (through Redis this process would otherwise hear of it only later), then tell
        # the other processes.
        if self._listen:
            await self.refresh(name)
        await self._bus.publish(BUS_CHANNEL, {"name": name, "origin": self._origin})

    async def _save(self, name: str, values: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        async with writing(self._engine) as conn:
            result = await conn.execute(
                update(PluginState).where(PluginState.name == name).values(**values, updated_at=now)
            )
            if result.rowcount == 0:
                row = {"name": name, "enabled": False, "settings": {}, "updated_at": now}
                await conn.execute(insert(PluginState).values(**(row | values)))

    async def _audit(
        self,
        actor: str,
        action: str,
        target: str,
        address: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await audit.record(
            self._engine, action, actor=actor, target=target, address=address, details=details
        )

    async def _on_bus_message(self, message: dict[str, Any]) -> None:
        name = str(message["name"])
        if message.get("origin") != self._origin:
            await self.refresh(name)
        if self._on_change is not None and name in self.records:
            self._on_change(self.summary(self.records[name]))

    def summary(self, record: PluginRecord) -> dict[str, Any]:
        return record.summary()

    # --- events ------------------------------------------------------------------------

    def emit(self, name: str, data: Mapping[str, Any]) -> None:
        """Tell every active plugin's ``handle_event`` that ``name`` happened, in the background.

        Events are told one after the other, in the order they happened: a slow plugin holds up
        the events after it, never the action that caused them. Each event is told once, by the
        process where it happened (its plugins are the installation's enabled ones).
        """
        listening = self.pm.hook.handle_event.get_hookimpls()
        if not any(self.is_active(impl.plugin_name) for impl in listening):
            return
        self._events.append(Event(name, dict(data)))
        if self._telling is None or self._telling.done():
            self._telling = asyncio.create_task(self._tell_events(), name="plugin events")

    async def _tell_events(self) -> None:
        while self._events:
            event = self._events.popleft()
            try:
                await self.call_each(hookspecs.handle_event, event=event)
            except Exception:
                log.exception("telling the plugins of %s failed", event.name)

    # --- calling hooks -----------------------------------------------------------------
    #
    # pluggy keeps the hooks: their specs, each plugin's implementations, their order
    # (last registered first, tryfirst/trylast honoured) and the arguments each takes. The
    # calls are made here rather than by pluggy's hook caller, which runs every implementation
    # in one go with the same arguments and stops at the first exception: each plugin is given
    # its own context, one that raises is skipped (logged once, shown on the admin page),
    # inactive plugins are left out, and answers may be awaitables.

    async def call_each(
        self, hook: Hook[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> list[tuple[str, R]]:
        """Call ``hook`` (``hookspecs.search_media``, say) on every active plugin, each on its
        own; skip those that raise.

        Returns ``(plugin name, answer)`` for each plugin that answered something other than
        ``None``. A first-result hook is :meth:`call_first`'s.
        """
        caller = self._spec_caller(hook, args, kwargs, first_result=False)
        return await self._run(caller, kwargs, first=False)

    async def call_first(
        self, hook: Hook[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> tuple[str, R] | None:
        """Call a first-result ``hook`` (``hookspecs.lookup_media``, say) on active plugins in
        turn until one answers something other than ``None``: ``(plugin name, answer)``."""
        caller = self._spec_caller(hook, args, kwargs, first_result=True)
        answers = await self._run(caller, kwargs, first=True)
        return answers[0] if answers else None

    async def call_plugin(
        self,
        name: str,
        hook: Callable[Concatenate[PluginContext, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R | None:
        """Call ``hook`` on one active plugin; ``None`` if it is inactive, lacks it or raised."""
        caller = self._spec_caller(hook, args, kwargs)
        record = self.get(name)
        impl = self._impl(record, caller.name) if record.active else None
        if impl is None:
            return None
        answer: R | None = await self._call_impl(
            record, impl, caller.name, kwargs | {"plugin": self.context(name)}
        )
        return answer

    def _spec_caller(
        self,
        hook: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        first_result: bool | None = None,
    ) -> pluggy.HookCaller:
        """pluggy's caller of ``hook``, once the call is known to fit what its spec declares."""
        if isinstance(hook, str):
            raise TypeError(f"name a hook by its spec (hookspecs.{hook}), not by a string")
        caller: pluggy.HookCaller | None = getattr(
            self.pm.hook, getattr(hook, "__name__", ""), None
        )
        if caller is None or caller.spec is None or caller.spec.function is not hook:
            raise TypeError(f"{hook!r} is not one of MediaNest's hook specifications")
        if args:
            raise TypeError(f"hook {caller.name}() takes its arguments by name")
        declared = _is_first_result(caller)
        if first_result is not None and declared != first_result:
            raise TypeError(
                f"hook {caller.name}() is a first-result hook (the first plugin to answer"
                " decides): call it with call_first"
                if declared
                else f"hook {caller.name}() is answered by every plugin: call it with call_each"
            )
        _check_arguments(caller, kwargs)
        return caller

    async def _run(
        self, caller: pluggy.HookCaller, kwargs: Mapping[str, Any], *, first: bool
    ) -> list[tuple[str, Any]]:
        """Call each active plugin's implementation in pluggy's order (``get_hookimpls`` lists
        them in reverse), and keep the answers that are not ``None``; ``first`` stops at one."""
        answers: list[tuple[str, Any]] = []
        for impl in reversed(caller.get_hookimpls()):
            record = self.records.get(impl.plugin_name)
            if record is None or not record.active:
                continue
            context = self.context(record.name)
            answer = await self._call_impl(record, impl, caller.name, {**kwargs, "plugin": context})
            if answer is not None:
                answers.append((record.name, answer))
                if first:
                    break
        return answers

    def _impl(self, record: PluginRecord, hook: str) -> pluggy.HookImpl | None:
        if record.module is None or not self.pm.is_registered(record.module):
            return None
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == record.name:
                return impl
        return None

    async def _call_impl(
        self, record: PluginRecord, impl: pluggy.HookImpl, hook: str, kwargs: Mapping[str, Any]
    ) -> Any:
        """One plugin's answer; ``None`` if it raised (``MediaNotFound`` is an answer)."""
        try:
            result = await _invoke(impl, kwargs)
        except MediaNotFound:
            raise
        except Exception as exc:
            if self.note_failure(record.name, hook, exc):
                log.exception("plugin %s failed in %s", record.name, hook)
            return None
        self.note_success(record.name, hook)
        return result

    def note_failure(self, name: str, what: str, exc: BaseException) -> bool:
        """Show that ``what`` (a hook, a widget) of plugin ``name`` failed on the admin page.

        Returns whether this failure is news, so that callers log it once, not on every call.
        """
        record = self.records.get(name)
        if record is None:
            return True
        message = f"{type(exc).__name__}: {exc}"
        news = record.hook_errors.get(what) != message
        record.hook_errors[what] = message
        return news

    def note_success(self, name: str, what: str) -> None:
        """``what`` of plugin ``name`` works (again): clear its failure from the admin page."""
        record = self.records.get(name)
        if record is not None:
            record.hook_errors.pop(what, None)


async def _invoke(impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
    """Call one implementation as pluggy does, with the arguments it names (``argnames``, a
    subset of the spec's, checked at registration), then await its answer if need be."""
    return await resolve(impl.function(*[kwargs[name] for name in impl.argnames]))


def _is_first_result(caller: pluggy.HookCaller) -> bool:
    return caller.spec is not None and bool(caller.spec.opts.get("firstresult"))


def _check_arguments(caller: pluggy.HookCaller, kwargs: Mapping[str, Any]) -> None:
    """Refuse a call that does not pass exactly what the hook's spec declares.

    A keyword the spec does not declare would reach no plugin (a misspelling lost unseen), and
    one it declares but the call lacks would fail in the plugins that ask for it, shown on the
    admin page as their fault.
    """
    assert caller.spec is not None
    declared = [name for name in caller.spec.argnames if name != "plugin"]
    for name in kwargs:
        if name == "plugin":
            raise TypeError(
                f"hook {caller.name}() is passed 'plugin' by MediaNest (each plugin its own"
                " context), not by the caller"
            )
        if name not in declared:
            offered = ", ".join(repr(n) for n in declared) or "no arguments"
            raise TypeError(f"hook {caller.name}() has no argument {name!r} (it takes {offered})")
    missing = [name for name in declared if name not in kwargs]
    if missing:
        raise TypeError(f"hook {caller.name}() is missing its argument {missing[0]!r}")


def _refuse_wrappers(pm: pluggy.PluginManager, name: str, module: object) -> None:
    """Refuse a plugin's hook wrappers (``wrapper=True``, ``hookwrapper=True``).

    A wrapper wraps pluggy's one call of every implementation of a hook; MediaNest calls each
    plugin's implementation on its own, so there is no such call, and the wrapper would run as
    an ordinary implementation (a generator, answering nothing anyone reads).
    """
    for caller in pm.get_hookcallers(module) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is module and (impl.wrapper or impl.hookwrapper):
                raise pluggy.PluginValidationError(
                    module,
                    f"Plugin {name!r} for hook {caller.name!r}\n"
                    "is a hook wrapper (wrapper=True or hookwrapper=True), which MediaNest does"
                    " not support: it calls each plugin's implementation on its own, so there is"
                    " no call of them all to wrap. Implement the hook plainly.",
                )


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def secret_fields(model: type[BaseModel] | None) -> set[str]:
    """The fields of a settings model that hold secrets (``SecretStr``, optional or not)."""
    if model is None:
        return set()
    return {name for name, f in model.model_fields.items() if _is_secret(f.annotation)}


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``list[Model]`` field (several instances of a service), else None."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    for arg in typing.get_args(annotation):  # list[Model] | None
        found = _item_model(arg) if arg is not type(None) else None
        if found is not None:
            return found
    return None


def secret_paths(model: type[BaseModel] | None, data: dict[str, Any]) -> list[str]:
    """Where the secrets of ``data`` (settings as JSON) are: ``"api_key"`` for a top-level
    field, ``"sonarr.0.api_key"`` for a field of the first item of a list of instances."""
    if model is None:
        return []
    paths = []
    for name, info in model.model_fields.items():
        if _is_secret(info.annotation):
            paths.append(name)
            continue
        item_model = _item_model(info.annotation)
        items = data.get(name)
        if item_model is not None and isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    paths.extend(f"{name}.{index}.{f}" for f in sorted(secret_fields(item_model)))
    return paths


def encrypted_paths(data: Any, prefix: str = "") -> list[str]:
    """Paths of every encrypted value in ``data``, for settings whose model is unknown."""
    if isinstance(data, dict):
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        # A leaf: its path is the keys that led here ("sonarr.0.api_key"), no trailing dot.
        return [prefix.rstrip(".")] if prefix and is_encrypted(data) else []
    return [p for key, value in items for p in encrypted_paths(value, f"{prefix}{key}.")]


def get_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list):
            index = int(part)
            data = data[index] if index < len(data) else None
        elif isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at ``path`` (the containers on the way are copied)."""
    head, _, rest = path.partition(".")
    if not rest:
        return {**data, head: value}
    child = data.get(head)
    if isinstance(child, list):
        index, _, tail = rest.partition(".")
        items = list(child)
        item = items[int(index)]
        items[int(index)] = set_path(item, tail, value) if tail else value
        return {**data, head: items}
    return {**data, head: set_path(dict(child or {}), rest, value)}


def secret_binding(plugin: str, field_name: str) -> str:
    """What an encrypted plugin secret is bound to: it decrypts for that field only."""
    return f"plugin:{plugin}:{field_name}"


def _plain(settings: BaseModel) -> dict[str, Any]:
    """The settings as JSON values, secrets included (pydantic's dump would mask them)."""
    data: dict[str, Any] = to_jsonable_python(_reveal(settings.model_dump()))
    return data


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors()
    ]
