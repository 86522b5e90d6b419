"""The plugin's HTTP routes: what the admin form offers for an instance, and the receiver of
the servers' "Connect → Webhook" notifications."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from medianest import ApiError, ApiModel, PluginContext, Route, ServiceError

from . import pollers
from .client import Arr, describe, episode_code, instance
from .settings import APP_NAMES, KINDS, Kind

SECRET_HEADER = "X-MediaNest-Secret"


# --- options for the admin form -------------------------------------------------------------


class OptionsQuery(ApiModel):
    kind: Kind = Field(description="sonarr or radarr")
    index: int = Field(ge=0, description="Which instance of that kind, counted from 0")


class Choice(BaseModel):
    id: int
    name: str


class FolderChoice(BaseModel):
    id: int | None
    path: str
    free_space: int | None


class InstanceOptions(BaseModel):
    """What an instance offers for its settings, read from it now."""

    kind: Kind
    instance: str
    version: str
    quality_profiles: list[Choice]
    root_folders: list[FolderChoice]
    # Sonarr 3 only: Sonarr 4 and Radarr have none.
    language_profiles: list[Choice]
    tags: list[Choice]


def _instance(plugin: PluginContext, kind: str, index: int) -> Arr:
    known = next((k for k in KINDS if k == kind), None)
    arr = instance(plugin, known, index) if known is not None else None
    if arr is None:
        app = APP_NAMES[known] if known is not None else kind
        raise ApiError(404, f"There is no {app} instance number {index} in the settings.")
    return arr


async def instance_options(
    request: web.Request, query: OptionsQuery, plugin: PluginContext
) -> InstanceOptions:
    """The quality profiles, root folders, language profiles and tags of one instance."""
    arr = _instance(plugin, query.kind, query.index)
    try:
        found = await arr.options()
    except ServiceError as exc:
        raise ApiError(502, describe(exc)) from None
    return InstanceOptions(
        kind=arr.kind,
        instance=arr.name,
        version=found.version,
        quality_profiles=[Choice(id=p.id, name=p.name) for p in found.quality_profiles],
        root_folders=[
            FolderChoice(id=f.id, path=f.path, free_space=f.free_space) for f in found.root_folders
        ],
        language_profiles=[Choice(id=p.id, name=p.name) for p in found.language_profiles],
        tags=[Choice(id=t.id, name=t.label) for t in found.tags],
    )


# --- the webhook receiver -------------------------------------------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)


class HookMovie(_Payload):
    id: int | None = None
    title: str = ""
    year: int | None = None
    tmdb_id: int | None = None


class HookSeries(_Payload):
    id: int | None = None
    title: str = ""
    tvdb_id: int | None = None


class HookEpisode(_Payload):
    season_number: int | None = None
    episode_number: int | None = None
    title: str = ""


class WebhookPayload(_Payload):
    """What Sonarr and Radarr post (the fields MediaNest reads)."""

    event_type: str
    instance_name: str = ""
    movie: HookMovie | None = None
    series: HookSeries | None = None
    episodes: list[HookEpisode] = Field(default_factory=list)
    download_id: str | None = None
    is_upgrade: bool = False


# eventType → the event published; those that change the library refresh the missing counts.
EVENTS = {
    "Test": "test",
    "Grab": "grabbed",
    "Download": "imported",
    "MovieDelete": "deleted",
    "SeriesDelete": "deleted",
    "MovieFileDelete": "file_deleted",
    "EpisodeFileDelete": "file_deleted",
    "ManualInteractionRequired": "needs_attention",
}
CHANGE_LIBRARY = {"Download", "MovieDelete", "SeriesDelete", "MovieFileDelete", "EpisodeFileDelete"}


class WebhookReceived(BaseModel):
    received: str
    instance: str


def _given_secret(request: web.Request) -> str | None:
    """The secret in the query (``?secret=``), the header, or as the password of HTTP Basic
    auth (the webhook settings of Sonarr 3 and Radarr 3 have only a username and password)."""
    if request.query.get("secret"):
        return request.query["secret"]
    if request.headers.get(SECRET_HEADER):
        return request.headers[SECRET_HEADER]
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _title(payload: WebhookPayload) -> str:
    if payload.movie is not None:
        movie = payload.movie
        return f"{movie.title} ({movie.year})" if movie.year else movie.title
    if payload.series is not None:
        codes = [episode_code(e.season_number, e.episode_number) for e in payload.episodes]
        return " ".join([payload.series.title, *filter(None, codes)]).strip()
    return ""


def _ids(payload: WebhookPayload) -> dict[str, str]:
    if payload.movie is not None and payload.movie.tmdb_id:
        return {"tmdb": str(payload.movie.tmdb_id)}
    if payload.series is not None and payload.series.tvdb_id:
        return {"tvdb": str(payload.series.tvdb_id)}
    return {}


async def _refresh(
    plugin: PluginContext, arr: Arr, event_type: str, ids: Mapping[str, str]
) -> None:
    await pollers.refresh_queue(plugin, arr, force=True)
    if event_type in CHANGE_LIBRARY:
        await pollers.refresh_wanted(plugin, arr, force=True)
    if ids:
        # The requests for it see the new queue state (or the import) now.
        await plugin.media_changed("movie" if arr.kind == "radarr" else "tv", ids)


async def receive_webhook(request: web.Request, plugin: PluginContext) -> WebhookReceived:
    """Sonarr's or Radarr's "Connect → Webhook" notification: announced to open dashboards
    at once, and the instance's queue is read again."""
    index = request.match_info["index"]
    arr = _instance(plugin, request.match_info["kind"], int(index))
    secret = arr.settings.webhook_secret
    given = _given_secret(request)
    if (
        secret is None
        or given is None
        or not hmac.compare_digest(given.encode(), secret.get_secret_value().encode())
    ):
        raise ApiError(401, f"Wrong or missing webhook secret for {arr.name}.")
    try:
        payload = WebhookPayload.model_validate(orjson.loads(await request.read()))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise ApiError(400, f"Not a webhook notification of {arr.app}: {exc}") from None
    event = EVENTS.get(payload.event_type, payload.event_type.lower())
    await plugin.publish(
        pollers.QUEUE_TOPIC,
        event,
        {
            "instance": arr.name,
            "kind": arr.kind,
            "event_type": payload.event_type,
            "title": _title(payload),
            "ids": _ids(payload),
            "upgrade": payload.is_upgrade,
        },
    )
    if payload.event_type != "Test":
        # After the answer: the server is not kept waiting on MediaNest's calls to it.
        plugin.spawn(
            _refresh(plugin, arr, payload.event_type, _ids(payload)),
            name=f"refreshing {arr.name} after its webhook",
        )
    return WebhookReceived(received=payload.event_type, instance=arr.name)


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/arr/options",
            instance_options,
            query=OptionsQuery,
            response=InstanceOptions,
            access="manage_settings",
            summary="Quality profiles, root folders, language profiles and tags of an instance",
        ),
        Route(
            "POST",
            r"/arr/webhook/{kind:sonarr|radarr}/{index:\d+}",
            receive_webhook,
            response=WebhookReceived,
            access="public",
            csrf=False,
            summary="Receive a Sonarr or Radarr webhook (the instance's secret is required)",
        ),
    ]
