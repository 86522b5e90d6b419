"""The one place where failures become responses.

API paths (``/api/``) answer ``{"error": {"code", "message", "details"}}``; pages answer a
friendly HTML page. A dependency that stopped answering (Redis, the database's connection)
is answered 503, saying which; anything else unexpected is logged with its traceback and
answered 500 without one.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import web

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


class ApiError(Exception):
    """A failure with an HTTP status, a machine-readable code and a message for people."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers or {}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_body(err: ApiError) -> dict[str, Any]:
    return {"error": {"code": err.code, "message": err.message, "details": err.details}}


def _wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


async def _render(request: web.Request, err: ApiError) -> web.StreamResponse:
    if _wants_json(request):
        return json_response(error_body(err), status=err.status)
    try:
        return aiohttp_jinja2.render_template(
            "error.html", request, {"error": err}, status=err.status
        )
    except Exception:  # the error page itself must never fail
        log.exception("error page failed to render")
        return web.Response(text=err.message, status=err.status)


_HTTP_MESSAGES = {
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The request body is too large.",
}


async def error_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to a failure: an :class:`ApiError`, an aiohttp HTTP error (4xx, 5xx) or
    anything unexpected (logged with its traceback). Redirects are not failures: the caller
    lets them through."""
    if isinstance(exc, ApiError):
        response = await _render(request, exc)
        response.headers.update(exc.headers)
        return response
    if isinstance(exc, web.HTTPException):
        default_text = f"{exc.status}: {exc.reason}"
        if exc.text and exc.text != default_text:
            message = exc.text
        else:
            message = _HTTP_MESSAGES.get(exc.status, exc.reason)
        response = await _render(request, ApiError(exc.status, message))
        for header in ("Allow", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    missing = _unreachable(exc)
    if missing is not None:
        log.error("%s %s: %s is not answering: %s", request.method, request.path, missing, exc)
        response = await _render(
            request,
            ApiError(
                503,
                f"MediaNest cannot reach {missing} right now; try again in a moment. "
                "An admin can see what is down at /readyz.",
            ),
        )
        response.headers["Retry-After"] = "5"
        return response
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return await _render(
        request, ApiError(500, "Something went wrong on our side; it has been logged.")
    )


def _unreachable(exc: BaseException) -> str | None:
    """What MediaNest could not reach when that is why ``exc`` happened (Redis, the database),
    looking through the exceptions it was raised from; None otherwise. The libraries are not
    imported here: the embedded default has no Redis client loaded."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        names = {k.__name__ for k in kind.__mro__}
        if kind.__module__.startswith("redis.") and names & {"ConnectionError", "TimeoutError"}:
            return "Redis"
        if kind.__module__.startswith("sqlalchemy.") and getattr(
            current, "connection_invalidated", False
        ):
            return "the database"
        current = current.__cause__ or current.__context__
    return None
