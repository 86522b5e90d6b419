"""Sonarr and Radarr: download queues, calendars, and fulfilment of approved requests.

Any number of instances of each (a Radarr for 4K next to the everyday one, a Sonarr for anime),
each with its own name, settings and health. Hook implementations only; the calls are in
``client``, fulfilment and progress in ``fulfilment``, the widgets' loaders in ``widgets``, the
background refreshes in ``pollers`` and the routes (admin options, webhook) in ``routes``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from medianest import (
    FulfilmentResult,
    HealthResult,
    PluginContext,
    Progress,
    RequestInfo,
    Route,
    ServiceError,
    Unauthorised,
    Widget,
    hookimpl,
)

from . import fulfilment, pollers, routes, widgets
from .client import Arr, describe, instances, trial
from .settings import APP_NAMES, ArrInstance, Kind, Settings

TEMPLATES = Path(__file__).parent / "templates"
LABEL = "Sonarr & Radarr"


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def register_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def register_widgets() -> list[Widget]:
    return [
        Widget("queue", "Downloads", "queue.html", widgets.load_queue, coordinator=pollers.QUEUE),
        Widget(
            "upcoming",
            "Coming up",
            "upcoming.html",
            widgets.load_upcoming,
            coordinator=pollers.UPCOMING,
        ),
        Widget("wanted", "Missing", "wanted.html", widgets.load_wanted, coordinator=pollers.WANTED),
        Widget("disk", "Disk space", "disk.html", widgets.load_disk, coordinator=pollers.DISK),
        Widget(
            "health",
            "Sonarr & Radarr health",
            "health.html",
            widgets.load_health,
            coordinator=pollers.HEALTH,
        ),
    ]


@hookimpl
def register_routes() -> list[Route]:
    return routes.routes()


@hookimpl
async def fulfil_request(request: RequestInfo, plugin: PluginContext) -> FulfilmentResult | None:
    return await fulfilment.fulfil(request, plugin)


@hookimpl
async def request_progress(
    ids: Mapping[str, str], media_type: str, plugin: PluginContext
) -> list[Progress] | None:
    return await fulfilment.progress(ids, media_type, plugin)


# --- connection test and health ---------------------------------------------------------------


@hookimpl
async def check_connection(settings: Settings, plugin: PluginContext) -> list[HealthResult]:
    """Try each proposed instance for real: its address and key, that it is the kind of server
    it is listed as, and that the profile, folder and tags chosen for it exist there."""
    return list(
        await asyncio.gather(
            *(_try_instance(plugin, kind, inst) for kind, _, inst in settings.all())
        )
    )


async def _try_instance(plugin: PluginContext, kind: Kind, settings: ArrInstance) -> HealthResult:
    name, app = settings.name, APP_NAMES[kind]
    async with trial(plugin, kind, settings) as arr:
        started = time.perf_counter()
        try:
            status = await arr.status()
        except Unauthorised:
            return HealthResult(name, "degraded", f"{name} refused the API key.")
        except ServiceError as exc:
            return HealthResult(name, "down", describe(exc))
        latency = round((time.perf_counter() - started) * 1000, 1)
        version = status.version or None
        if status.app_name and status.app_name != app:
            return HealthResult(
                name,
                "degraded",
                f"{settings.base_url} is {status.app_name}, not {app}.",
                latency,
                version,
            )
        try:
            problems = await _unknown_choices(arr, status.major)
        except ServiceError as exc:
            return HealthResult(name, "down", describe(exc), latency, version)
    if problems:
        return HealthResult(name, "degraded", " ".join(problems), latency, version)
    return HealthResult(name, "ok", f"{app} {status.version}".strip(), latency, version)


async def _unknown_choices(arr: Arr, major: int) -> list[str]:
    """What the settings choose that the server does not have, in words."""
    settings, problems = arr.settings, []
    if settings.quality_profile_id is not None:
        profiles = await arr.quality_profiles()
        if settings.quality_profile_id not in {p.id for p in profiles}:
            offered = ", ".join(f"{p.id} {p.name}" for p in profiles) or "none"
            problems.append(
                f"{arr.name} has no quality profile {settings.quality_profile_id}"
                f" (it has: {offered})."
            )
    if settings.root_folder:
        folders = await arr.root_folders()
        if settings.root_folder.rstrip("/\\") not in {f.path.rstrip("/\\") for f in folders}:
            offered = ", ".join(f.path for f in folders) or "none"
            problems.append(
                f"{arr.name} has no root folder {settings.root_folder} (it has: {offered})."
            )
    if arr.is_sonarr and settings.language_profile_id is not None:
        if major >= 4:
            problems.append(
                f"{arr.name} is Sonarr {major}, which has no language profiles; leave the"
                " language profile empty."
            )
        else:
            languages = await arr.language_profiles()
            if settings.language_profile_id not in {p.id for p in languages}:
                offered = ", ".join(f"{p.id} {p.name}" for p in languages) or "none"
                problems.append(
                    f"{arr.name} has no language profile {settings.language_profile_id}"
                    f" (it has: {offered})."
                )
    if settings.tags:
        known = {t.id for t in await arr.tags()}
        missing = [str(t) for t in settings.tags if t not in known]
        if missing:
            problems.append(f"{arr.name} has no tag {', '.join(missing)}.")
    return problems


@hookimpl
async def check_health(plugin: PluginContext) -> list[HealthResult]:
    """Each instance: reachable with its key, its version, and its own health errors."""
    arrs = instances(plugin)
    if not arrs:
        return [HealthResult(LABEL, "unconfigured", "No Sonarr or Radarr is set up.")]
    return list(await asyncio.gather(*(_health(arr) for arr in arrs)))


async def _health(arr: Arr) -> HealthResult:
    started = time.perf_counter()
    try:
        status = await arr.status()
    except Unauthorised:
        return HealthResult(arr.name, "degraded", f"{arr.name} refused the API key.")
    except ServiceError as exc:
        return HealthResult(arr.name, "down", describe(exc))
    latency = round((time.perf_counter() - started) * 1000, 1)
    version = status.version or None
    name = f"{arr.app} {status.version}".strip()
    try:
        checks = await arr.health_now()
    except ServiceError as exc:
        return HealthResult(arr.name, "degraded", f"{name}; {describe(exc)}", latency, version)
    errors = [c for c in checks if c.type == "error"]
    if errors:
        said = "; ".join(f"{c.source}: {c.message}" for c in errors)
        return HealthResult(arr.name, "degraded", f"{name} reports: {said}", latency, version)
    warnings = [c for c in checks if c.type == "warning"]
    if warnings:
        count = f"{len(warnings)} warning" + ("s" if len(warnings) > 1 else "")
        said = "; ".join(c.message for c in warnings)
        return HealthResult(arr.name, "ok", f"{name}, {count}: {said}", latency, version)
    return HealthResult(arr.name, "ok", name, latency, version)
