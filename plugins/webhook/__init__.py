"""Outgoing webhook: notifications about requests, posted as signed JSON to an address you set.

The JSON has the shape Overseerr's webhook agent sends, so receivers built for it understand it.

Hook implementations only; building, signing and sending are in ``sender``.
"""

from __future__ import annotations

from pydantic import BaseModel

from medianest import HealthResult, Notice, PluginContext, hookimpl

from . import sender
from .sender import LABEL, DeliveryFailed, Sender
from .settings import Settings

SENDER = "sender"


@hookimpl
def register_settings_model() -> type[BaseModel]:
    return Settings


@hookimpl
def activate(plugin: PluginContext) -> None:
    plugin.state[SENDER] = Sender(plugin.log, plugin.spawn)


@hookimpl
async def deactivate(plugin: PluginContext) -> None:
    # Notices still waiting for a retry were dropped with the settings they were sent under
    # (their tasks are the plugin's: stopped before this is called).
    running: Sender | None = plugin.state.pop(SENDER, None)
    if running is not None:
        await running.close()


@hookimpl
def notify(notice: Notice, plugin: PluginContext) -> None:
    """Post ``notice`` in the background, if it is one of the kinds the admin chose."""
    settings: Settings = plugin.settings
    if not settings.configured or not settings.sends(notice.kind):
        return
    running: Sender | None = plugin.state.get(SENDER)
    if running is not None:  # only active plugins are notified; activation made it
        running.send(notice, settings)


@hookimpl
async def check_connection(settings: Settings, plugin: PluginContext) -> HealthResult:
    """Post a test notification to the proposed address; anything but a 2xx refuses the save."""
    if settings.url is None:
        return HealthResult(LABEL, "unconfigured", "No webhook URL is set.")
    try:
        status, latency = await sender.try_once(sender.test_notice(), settings)
    except DeliveryFailed as exc:
        return HealthResult(LABEL, "down", f"The test notification was not delivered: {exc}.")
    return HealthResult(
        LABEL, "ok", f"The receiver took a test notification (HTTP {status}).", latency
    )


@hookimpl
def check_health(plugin: PluginContext) -> HealthResult:
    """How the latest notification went (asking would post one to the receiver)."""
    settings: Settings = plugin.settings
    if not settings.configured:
        return HealthResult(LABEL, "unconfigured", "Set the webhook URL and signing secret.")
    running: Sender | None = plugin.state.get(SENDER)
    last = running.last if running is not None else None
    waiting = running.pending if running is not None else 0
    retrying = f" {waiting} being retried." if waiting else ""
    if last is None:
        return HealthResult(LABEL, "ok", f"No notification sent since MediaNest started.{retrying}")
    when = f"{last.at.astimezone():%H:%M}"
    if last.delivered:
        return HealthResult(LABEL, "ok", f"Last notification delivered at {when}.{retrying}")
    return HealthResult(
        LABEL,
        "degraded",
        f"The notification at {when} was not delivered: {last.message}.{retrying}",
    )
