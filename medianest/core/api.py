"""Declared routes: validation of bodies and queries, JSON responses, and the OpenAPI document.

Core and plugin routes are both :class:`~medianest.core.extensions.Route` objects, so one
function turns each into an aiohttp handler and one function describes them all in an
OpenAPI 3.1 document; the description cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.json_schema import models_json_schema

from .errors import ApiError, json_response
from .extensions import PluginContext, Route, call_with, resolve
from .middleware import guard

_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
MAX_BODY_BYTES = 1024 * 1024


class ApiModel(BaseModel):
    """Base for request and response bodies: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class QueryModel(ApiModel):
    """Query parameters: an empty value (as an HTML form sends it) means "not given"."""

    @model_validator(mode="before")
    @classmethod
    def _drop_blanks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The shape of every 4xx and 5xx answer under ``/api/``."""

    error: ErrorDetail


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors()
    ]


async def _read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if request.content_type == "application/json" or raw[:1] in (b"{", b"["):
        try:
            orjson.loads(raw or b"null")
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
        # Strict, so that what the server accepts is what the published schema allows
        # ("3" is not an integer); JSON mode still reads dates, UUIDs and enums from strings.
        try:
            return model.model_validate_json(raw or b"null", strict=True)
        except ValidationError as exc:
            raise ApiError(
                422, "the request body is not valid; see details", details=validation_details(exc)
            ) from None
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        data = dict(await request.post())
    else:
        raise ApiError(415, "send the body as application/json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422, "the request body is not valid; see details", details=validation_details(exc)
        ) from None


def _read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ApiError(
            422,
            "the query parameters are not valid; see details",
            details=validation_details(exc),
        ) from None


def to_response(result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, BaseModel):
        return web.Response(
            body=result.__pydantic_serializer__.to_json(result), content_type="application/json"
        )
    return json_response(result)


def make_handler(
    route: Route,
    plugin: str | None = None,
    is_active: Callable[[str], bool] | None = None,
    context: Callable[[str], PluginContext] | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route's handler: plugin gate, validation, argument injection, serialisation."""

    async def handler(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {"request": request}
        # Who may ask comes first: a visitor who is not signed in learns nothing, not even
        # which integrations are enabled.
        await guard(request, route)
        if plugin is not None:
            assert is_active is not None and context is not None
            if not is_active(plugin):
                raise web.HTTPNotFound()
            kwargs["plugin"] = context(plugin)
        if route.query is not None:
            kwargs["query"] = _read_query(request, route.query)
        if route.body is not None:
            kwargs["body"] = await _read_body(request, route.body)
        return to_response(await resolve(call_with(route.handler, **kwargs)))

    handler.__name__ = getattr(route.handler, "__name__", "handler")
    # Lets a test walk the router and prove every route declares who may call it.
    handler.medianest_access = route.access  # type: ignore[attr-defined]
    return handler


def add_routes(
    router: web.UrlDispatcher,
    routes: Iterable[Route],
    plugin: str | None = None,
    is_active: Callable[[str], bool] | None = None,
    context: Callable[[str], PluginContext] | None = None,
) -> None:
    for route in routes:
        handler = make_handler(route, plugin, is_active, context)
        router.add_route(route.method, route.path, handler, name=route.name)
        # What answers GET answers HEAD too (uptime monitors ask so), without the body; a
        # websocket has nothing to say to HEAD.
        if route.method == "GET" and route.path != "/ws":
            router.add_route("HEAD", route.path, handler)


_SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "medianest_session",
        "description": "A signed-in browser; state changes also need X-CSRF-Token.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token made on the account page.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "The same API token, in a header.",
    },
}
_SIGNED_IN: list[dict[str, list[str]]] = [{"session": []}, {"bearer": []}, {"apiKey": []}]


def openapi_document(
    routes: Iterable[tuple[str | None, Route]], *, title: str, version: str
) -> dict[str, Any]:
    """Describe ``(plugin or None, route)`` pairs as an OpenAPI 3.1 document."""
    routes = [(p, r) for p, r in routes if r.include_in_schema]
    models: set[type[BaseModel]] = {ErrorResponse}
    for _, route in routes:
        # Query models too, so that what their fields refer to (enums, say) is in components.
        models.update(m for m in (route.body, route.query, route.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    schemas = defs.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    error = {
        "description": "An error, in MediaNest's one error shape.",
        "content": {"application/json": {"schema": ref(ErrorResponse)}},
    }
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for plugin, route in routes:
        path = _PATH_PARAM.sub(r"{\1}", route.path)
        # Unique, as OpenAPI requires, even when plugins name their handlers alike.
        op_id = route.name or "_".join(
            filter(None, [plugin, route.method.lower(), route.handler.__name__])
        )
        base, n = op_id, 1
        while op_id in operation_ids:
            n += 1
            op_id = f"{base}_{n}"
        operation_ids.add(op_id)
        op: dict[str, Any] = {
            "summary": route.summary or (route.handler.__doc__ or "").strip().split("\n")[0],
            "operationId": op_id,
            "tags": [plugin or "core"],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PATH_PARAM.findall(route.path)
            ],
            "responses": {"4XX": error, "5XX": error},
            # Who may call it: nobody needs to sign in for a public route.
            "security": [] if route.access == "public" else _SIGNED_IN,
        }
        if route.query is not None:
            query_schema = schemas[ref(route.query)["$ref"].rsplit("/", 1)[-1]]
            for name, field in route.query.model_fields.items():
                name = field.alias or name
                schema = query_schema["properties"].get(name, {})
                op["parameters"].append(
                    {
                        "name": name,
                        "in": "query",
                        "required": field.is_required(),
                        "schema": schema,
                        "description": field.description or "",
                    }
                )
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(route.body)}},
            }
        ok: dict[str, Any] = {"description": "Success."}
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": ref(route.response)}}
        op["responses"]["200"] = ok
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }
