"""The web shell's pages and JSON API: every page's context, the dashboard and its widgets, the
integrations admin, liveness, the websocket endpoint and the OpenAPI document."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, RootModel

from .. import __version__
from ..core import hookspecs
from ..core.api import ApiModel, openapi_document
from ..core.auth import Permission
from ..core.errors import ApiError
from ..core.extensions import HealthResult, NavItem, Route, Widget
from ..core.keys import HUB, REGISTRY, ROUTES
from ..core.middleware import client_address, current_user, page_csrf_token
from ..core.plugins import (
    PluginNotFound,
    PluginRecord,
    PluginRegistry,
    PluginSettingsInvalid,
    get_path,
    secret_paths,
    set_path,
)
from .dashboard import WidgetOut
from .keys import BOARD, NAV, PAGE_VARS

log = logging.getLogger(__name__)

MASK = "••••"


# --- models of the JSON API --------------------------------------------------------------


class PluginOut(BaseModel):
    """An installed integration and its state."""

    name: str
    description: str
    version: str
    enabled: bool
    status: str
    error: str | None
    hook_errors: dict[str, str]
    settings: dict[str, Any]
    settings_schema: dict[str, Any] | None
    widgets: list[str]
    routes: list[str]


class PluginList(BaseModel):
    plugins: list[PluginOut]


class PluginSettingsIn(RootModel[dict[str, Any]]):
    """The plugin's settings, as its ``settings_schema`` describes them."""


class HealthOut(BaseModel):
    name: str
    status: str
    message: str
    latency_ms: float | None
    version: str | None


class PluginHealth(BaseModel):
    plugin: str
    checks: list[HealthOut]


class Dashboard(BaseModel):
    widgets: list[WidgetOut]


class Liveness(ApiModel):
    status: str
    version: str


# --- helpers -------------------------------------------------------------------------------


def _registry(request: web.Request) -> PluginRegistry:
    return request.app[REGISTRY]


def _record(request: web.Request) -> PluginRecord:
    try:
        return _registry(request).get(request.match_info["name"])
    except PluginNotFound:
        raise ApiError(
            404, f"no plugin named {request.match_info['name']!r} is installed"
        ) from None


def _masked_settings(record: PluginRecord) -> dict[str, Any]:
    """The stored settings with every secret (top-level or of an instance) shown as the mask."""
    masked = dict(record.raw_settings)
    for path in secret_paths(record.settings_model, masked):
        if get_path(masked, path):
            masked = set_path(masked, path, MASK)
    return masked


def _plugin_out(record: PluginRecord) -> PluginOut:
    return PluginOut(
        **record.summary(),
        settings=_masked_settings(record),
        settings_schema=record.settings_model.model_json_schema()
        if record.settings_model
        else None,
        widgets=[w.name for w in record.widgets],
        routes=[f"{r.method} {r.path}" for r in record.routes],
    )


def _actor(request: web.Request) -> tuple[str, str | None]:
    user = current_user(request)
    return (user.username if user else "anonymous"), client_address(request)


def _stored_at(path: str, moved: Mapping[str, str]) -> str:
    """Where the secret now at ``path`` was stored, if its instance moved in the list."""
    for now, before in moved.items():
        if path.startswith(now + "."):
            return before + path[len(now) :]
    return path


def _masked_fields(record: PluginRecord, data: dict[str, Any]) -> set[str]:
    """Secrets sent back as the mask they were shown: the stored secret is kept."""
    return {p for p in secret_paths(record.settings_model, data) if get_path(data, p) == MASK}


async def _save_settings(
    request: web.Request,
    record: PluginRecord,
    data: dict[str, Any],
    moved: Mapping[str, str] | None = None,
) -> None:
    actor, address = _actor(request)
    keep = {path: _stored_at(path, moved or {}) for path in _masked_fields(record, data)}
    try:
        await _registry(request).save_settings(
            record.name,
            {k: v for k, v in data.items() if k not in keep},
            keep_secrets=keep,
            actor=actor,
            address=address,
        )
    except PluginSettingsInvalid as exc:
        raise ApiError(422, str(exc), details=exc.errors) from None


# --- widgets ---------------------------------------------------------------------------


def _find_widget(request: web.Request) -> tuple[PluginRecord, Widget]:
    registry = _registry(request)
    name, widget_name = request.match_info["name"], request.match_info["widget"]
    record = registry.records.get(name)
    if record is None or not record.active:
        raise web.HTTPNotFound()
    for widget in record.widgets:
        if widget.name == widget_name:
            return record, widget
    raise web.HTTPNotFound()


# --- pages -----------------------------------------------------------------------------


async def page_context(request: web.Request) -> dict[str, Any]:
    """Template variables of every page: navigation and what plugins add."""
    registry = _registry(request)
    user = current_user(request)
    base: dict[str, Any] = {
        "user": user,
        "csrf_token": page_csrf_token(request),
        "current_path": request.path,
    }
    if user is None:
        return base | {"nav_items": []}
    for contribute in request.app[PAGE_VARS]:
        base.update(await contribute(request, user))
    nav = [item for _, item in request.app[NAV]]
    extra: dict[str, Any] = {}
    for _, items in await registry.call_each(hookspecs.extra_nav_items, request=request):
        nav.extend(items)
    for _, values in await registry.call_each(hookspecs.extra_template_vars, request=request):
        extra.update(values)
    visible = [item for item in nav if item.permission is None or user.has(item.permission)]
    return extra | base | {"nav_items": visible}


# Paths that never render a page: no navigation or unread count to look up for them.
_NOT_PAGES = ("/api/", "/static/", "/ws", "/healthz", "/readyz", "/metrics")


@web.middleware
async def page_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The template variables of :func:`page_context`, for requests that may render a page.

    aiohttp-jinja2's own context middleware runs for every request; an API call would pay for
    the navigation and the unread count (a database query) it never shows.
    """
    if not request.path.startswith(_NOT_PAGES):
        context = request.setdefault(aiohttp_jinja2.REQUEST_CONTEXT_KEY, {})
        context.update(await page_context(request))
    return await handler(request)


# The shell's own links; the other domains add theirs (see medianest.web.add_nav), each at its
# place in the bar.
SHELL_NAV = [
    (0, NavItem("Dashboard", "/")),
    (30, NavItem("Integrations", "/admin/plugins", Permission.MANAGE_SETTINGS)),
]


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """The dashboard: every enabled integration's widgets.

    A session's page is rendered again only when its tiles or its page context changed: a
    dashboard left open, or reloaded, is sent as it was last rendered.
    """
    board = request.app[BOARD]
    user = current_user(request)
    tiles = board.tiles(await board.views(request, user))
    context = request.get(aiohttp_jinja2.REQUEST_CONTEXT_KEY, {})
    if user is not None:
        body = board.page(user, tiles, context)
        if body is not None:
            return web.Response(body=body, content_type="text/html", charset="utf-8")
    response = aiohttp_jinja2.render_template("dashboard.html", request, {"tiles": tiles})
    if user is not None and isinstance(response.body, bytes):
        board.keep_page(user, tiles, context, response.body)
    return response


async def widget_fragment(request: web.Request) -> web.StreamResponse:
    """One widget's HTML, fetched by the dashboard when its topic announces new data."""
    record, widget = _find_widget(request)
    view = await request.app[BOARD].view(record, widget, request, current_user(request))
    return web.Response(text=view.tile, content_type="text/html")


async def admin_plugins_page(
    request: web.Request,
    *,
    errors: dict[str, Any] | None = None,
    submitted: dict[str, dict[str, Any]] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    """The integrations admin page: state, toggle and settings of each plugin.

    ``submitted`` (plugin name to form values) refills a form that was refused, so that what
    was typed is not lost.
    """
    registry = _registry(request)
    submitted = submitted or {}
    plugins = [
        {
            "record": record,
            "settings": _masked_settings(record) | submitted.get(record.name, {}),
            "fields": _form_fields(record),
            "pollers": registry.running_pollers(record.name),
            "services": [
                (client.config.display, client.health())
                for client in registry.context(record.name).service_clients()
            ]
            if record.active
            else [],
        }
        for record in sorted(registry.records.values(), key=lambda r: r.name)
    ]
    return aiohttp_jinja2.render_template(
        "admin/plugins.html", request, {"plugins": plugins, "errors": errors or {}}, status=status
    )


def _form_fields(record: PluginRecord) -> list[dict[str, Any]]:
    """The admin form of a plugin, built from its settings model's JSON schema."""
    if record.settings_model is None:
        return []
    schema = record.settings_model.model_json_schema()
    return _describe_fields(schema, schema.get("$defs", {}))


def _describe_fields(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        variants = [prop, *(alt for alt in prop.get("anyOf", []) if alt.get("type") != "null")]
        kind = next((v["type"] for v in variants if "type" in v), "string")
        secret = any(v.get("format") == "password" or v.get("writeOnly") for v in variants)
        field: dict[str, Any] = {
            "name": name,
            "label": prop.get("title", name),
            "help": prop.get("description", ""),
            "required": name in required,
            "default": prop.get("default"),
            # Values a plugin offers live (e.g. a Sonarr's quality profiles): the list field
            # names the JSON route per instance, each field which list of its answer to offer.
            "options_url": prop.get("x-options-url"),
            "options": prop.get("x-options"),
            "option_value": prop.get("x-option-value"),
            "option_label": prop.get("x-option-label"),
        }
        items = next((v.get("items") for v in variants if v.get("type") == "array"), None)
        if kind == "array" and items and "$ref" in items:
            # A list of instances (a second Sonarr, say): a fieldset each, plus a blank one.
            sub_schema = defs[items["$ref"].rsplit("/", 1)[-1]]
            field |= {"input": "instances", "fields": _describe_fields(sub_schema, defs)}
        elif kind == "array":
            field |= {"input": "list"}
        elif kind == "boolean":
            field |= {"input": "checkbox"}
        elif kind in ("integer", "number"):
            # The model's bounds (a poll interval's, say), checked by the browser too.
            field |= {"input": "number", "min": prop.get("minimum"), "max": prop.get("maximum")}
        else:
            field |= {"input": "password" if secret else "text"}
        fields.append(field)
    return fields


def _form_values(
    fields: list[dict[str, Any]], form: Mapping[str, Any], moved: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the admin form posted, shaped like the settings model wants it.

    ``moved`` collects, for instances that moved up because one before them was removed,
    their new position -> the position they were shown (and stored) at.
    """
    data: dict[str, Any] = {}
    for field in fields:
        name, kind = field["name"], field["input"]
        value = form.get(name)
        if kind == "instances":
            data[name] = _instances(field, form, moved if moved is not None else {})
        elif kind == "checkbox":
            data[name] = value is not None
        elif kind == "list":
            data[name] = [v.strip() for v in str(value or "").split(",") if v.strip()]
        elif value not in (None, ""):
            data[name] = value
    return data


def _instances(
    field: dict[str, Any], form: Mapping[str, Any], moved: dict[str, str]
) -> list[dict[str, Any]]:
    prefix = field["name"] + "."
    indexes = sorted(
        {int(k.split(".")[1]) for k in form if k.startswith(prefix) and k.split(".")[1].isdigit()}
    )
    items: list[dict[str, Any]] = []
    for index in indexes:
        item_prefix = f"{prefix}{index}."
        own = {k[len(item_prefix) :]: v for k, v in form.items() if k.startswith(item_prefix)}
        if own.get("_remove"):
            continue
        item = _form_values(field["fields"], own)
        # Filled in means a value other than the field's default (a blank fieldset shows those).
        typed = [
            v
            for f, v in ((f, item.get(f["name"])) for f in field["fields"])
            if f["input"] != "checkbox"
            and v not in (None, "", [])
            and str(v) != str(f["default"] if f["default"] is not None else "")
        ]
        if typed:  # the blank fieldset for a new instance stays out unless filled in
            if len(items) != index:
                moved[f"{prefix}{len(items)}"] = f"{prefix}{index}"
            items.append(item)
    return items


def _without_secrets(fields: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """Form values to show again after a refusal: secrets are never sent back to the browser."""
    shown: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        if field["input"] == "password" or name not in data:
            continue
        if field["input"] == "instances":
            shown[name] = [_without_secrets(field["fields"], item) for item in data[name]]
        else:
            shown[name] = data[name]
    return shown


async def admin_toggle(request: web.Request) -> web.StreamResponse:
    """Form post from the admin page: enable or disable, then back to the page."""
    record = _record(request)
    form = await request.post()
    enabled = form.get("enabled") == "1"
    actor, address = _actor(request)
    await _registry(request).set_enabled(record.name, enabled, actor=actor, address=address)
    raise web.HTTPSeeOther(f"/admin/plugins#plugin-{record.name}")


async def admin_settings(request: web.Request) -> web.StreamResponse:
    """Form post from the admin page: validate and save a plugin's settings."""
    record = _record(request)
    form = await request.post()
    fields = _form_fields(record)
    moved: dict[str, str] = {}
    data = _form_values(fields, form, moved)
    try:
        await _save_settings(request, record, data, moved)
    except ApiError as err:
        # Secrets are not sent back to the browser, even those just typed.
        typed = _without_secrets(fields, data)
        return await admin_plugins_page(
            request,
            errors={record.name: err.details or err.message},
            submitted={record.name: typed},
            status=err.status,
        )
    raise web.HTTPSeeOther(f"/admin/plugins#plugin-{record.name}")


# --- JSON API ------------------------------------------------------------------------------


async def list_plugins(request: web.Request) -> PluginList:
    """List every installed integration with its state."""
    records = sorted(_registry(request).records.values(), key=lambda r: r.name)
    return PluginList(plugins=[_plugin_out(r) for r in records])


async def get_plugin(request: web.Request) -> PluginOut:
    """One integration with its settings (secrets masked) and settings schema."""
    return _plugin_out(_record(request))


async def enable_plugin(request: web.Request) -> PluginOut:
    """Enable an integration on every MediaNest process."""
    return await _toggle(request, True)


async def disable_plugin(request: web.Request) -> PluginOut:
    """Disable an integration: its routes answer 404, its widgets and pollers stop."""
    return await _toggle(request, False)


async def _toggle(request: web.Request, enabled: bool) -> PluginOut:
    record = _record(request)
    if record.status == "import error":
        raise ApiError(409, f"{record.name} cannot be enabled: {record.error}")
    actor, address = _actor(request)
    await _registry(request).set_enabled(record.name, enabled, actor=actor, address=address)
    return _plugin_out(record)


async def put_plugin_settings(request: web.Request, body: PluginSettingsIn) -> PluginOut:
    """Replace an integration's settings; it is re-activated with them. A secret sent back as
    the mask stays with its instance, found by name, however the list was reordered."""
    record = _record(request)
    await _save_settings(request, record, body.root, _moved_by_name(record.raw_settings, body.root))
    return _plugin_out(record)


def _moved_by_name(stored: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, str]:
    """For lists of named instances: where each instance sent was stored, when elsewhere."""
    moved: dict[str, str] = {}
    for field, items in data.items():
        before = stored.get(field)
        if not isinstance(items, list) or not isinstance(before, list):
            continue
        where = {_name(item): index for index, item in enumerate(before) if _name(item) is not None}
        for index, item in enumerate(items):
            found = where.get(_name(item))
            if found is not None and found != index:
                moved[f"{field}.{index}"] = f"{field}.{found}"
    return moved


def _name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name.strip().casefold() if isinstance(name, str) and name.strip() else None


async def plugin_health(request: web.Request) -> PluginHealth:
    """Ask an enabled integration how its services are."""
    record = _record(request)
    if not record.active:
        raise ApiError(409, f"{record.name} is not enabled")
    result = await _registry(request).call_plugin(record.name, hookspecs.check_health)
    checks: list[HealthResult] = []
    if result is not None:
        checks.extend(result if isinstance(result, list) else [result])
    if "check_health" in record.hook_errors:
        checks.append(HealthResult(record.name, "down", record.hook_errors["check_health"]))
    return PluginHealth(plugin=record.name, checks=[HealthOut(**c.__dict__) for c in checks])


async def dashboard_data(request: web.Request) -> web.StreamResponse:
    """The data of every widget of every enabled integration."""
    views = await request.app[BOARD].views(request, current_user(request))
    # Each widget's JSON is kept with its view: the answer is only their join.
    body = b'{"widgets":[' + b",".join(view.json for view in views) + b"]}"
    return web.Response(body=body, content_type="application/json")


async def healthz(request: web.Request) -> Liveness:
    """The process is alive (checks no dependency)."""
    return Liveness(status="ok", version=__version__)


async def openapi(request: web.Request) -> web.StreamResponse:
    """The OpenAPI 3.1 description of the core's and the enabled plugins' API."""
    registry = _registry(request)
    routes: list[tuple[str | None, Route]] = [(None, r) for r in request.app[ROUTES]]
    for record in registry.active_records():
        routes.extend((record.name, r) for r in record.routes)
    doc = openapi_document(routes, title="MediaNest", version=__version__)
    return web.json_response(doc)


async def websocket(request: web.Request) -> web.StreamResponse:
    """Live events. A browser's socket must come from a MediaNest page: the cookie alone is not
    enough, since any site may open a websocket to us (cross-site websocket hijacking)."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "Websockets may only be opened from MediaNest's own pages.")
    user = current_user(request)
    return await request.app[HUB].handle(
        request,
        user_id=str(user.id) if user else None,
        session_id=str(user.session_id) if user and user.session_id else None,
        permissions=frozenset(
            p.name for p in request.app[REGISTRY].permissions() if user.has(p.name)
        )
        if user
        else frozenset(),
    )


SETTINGS_ACCESS = Permission.MANAGE_SETTINGS.value

SHELL_ROUTES = [
    Route("GET", "/", dashboard_page, name="dashboard", include_in_schema=False),
    Route("GET", "/widgets/{name}/{widget}", widget_fragment, include_in_schema=False),
    Route(
        "GET",
        "/admin/plugins",
        admin_plugins_page,
        name="admin-plugins",
        include_in_schema=False,
        access=SETTINGS_ACCESS,
    ),
    Route(
        "POST",
        "/admin/plugins/{name}/toggle",
        admin_toggle,
        include_in_schema=False,
        access=SETTINGS_ACCESS,
    ),
    Route(
        "POST",
        "/admin/plugins/{name}/settings",
        admin_settings,
        include_in_schema=False,
        access=SETTINGS_ACCESS,
    ),
    Route("GET", "/healthz", healthz, response=Liveness, access="public"),
    Route("GET", "/ws", websocket, include_in_schema=False),
    Route("GET", "/api/openapi.json", openapi, include_in_schema=False),
    Route("GET", "/api/v1/plugins", list_plugins, response=PluginList, access=SETTINGS_ACCESS),
    Route("GET", "/api/v1/plugins/{name}", get_plugin, response=PluginOut, access=SETTINGS_ACCESS),
    Route(
        "POST",
        "/api/v1/plugins/{name}/enable",
        enable_plugin,
        response=PluginOut,
        access=SETTINGS_ACCESS,
    ),
    Route(
        "POST",
        "/api/v1/plugins/{name}/disable",
        disable_plugin,
        response=PluginOut,
        access=SETTINGS_ACCESS,
    ),
    Route(
        "PUT",
        "/api/v1/plugins/{name}/settings",
        put_plugin_settings,
        body=PluginSettingsIn,
        response=PluginOut,
        access=SETTINGS_ACCESS,
    ),
    Route(
        "GET",
        "/api/v1/plugins/{name}/health",
        plugin_health,
        response=PluginHealth,
        access=SETTINGS_ACCESS,
    ),
    Route("GET", "/api/v1/dashboard", dashboard_data, response=Dashboard),
]
