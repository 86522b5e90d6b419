"""Logging: one JSON object per line for machines, readable lines in a terminal, and a request
id on every line written while a request (or work it started) runs.

The request id comes from the client's ``X-Request-ID`` when it is a sane token (so an id set by
nginx follows the request through), or is made here (a random prefix of this process and a
counter: unique without asking the system for randomness on every request); it is sent back in
the answer. Tasks
started while a request runs (a fulfilment, an upstream call) inherit it, as context variables do.
The access log leaves query strings out: webhooks carry their secret there.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import secrets
import sys
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


def parse_levels(spec: str) -> dict[str, str]:
    """``"medianest.plugins.plex=debug, aiohttp.access=warning"`` → logger name → level."""
    levels = {}
    for part in spec.split(","):
        name, sep, level = part.strip().partition("=")
        if not part.strip():
            continue
        if (
            not sep
            or not name.strip()
            or level.strip().upper() not in logging.getLevelNamesMapping()
        ):
            raise ValueError(f"{part.strip()!r} is not logger=level (debug, info, warning, error)")
        levels[name.strip()] = level.strip().upper()
    return levels


def setup_logging(level: str, fmt: str = "auto", levels: str = "") -> None:
    """Log to standard error at ``level``: JSON unless ``fmt`` is "text" (or "auto" in a
    terminal); ``levels`` sets the level of single components."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if as_json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(_TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every connection at INFO; its upgrades are still logged at WARNING.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # aiosqlite narrates every call, with its arguments.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    for name, component_level in parse_levels(levels).items():
        logging.getLogger(name).setLevel(component_level)


class _RequestIds:
    """16 hex digits: 8 random per process, then a counter."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"


_IDS = _RequestIds()
# A forked child must not hand out its parent's ids.
os.register_at_fork(after_in_child=_IDS.reseed)


def request_id_for(request: web.BaseRequest) -> str:
    """The client's ``X-Request-ID`` when it is sane, or a new id."""
    given = request.headers.get(REQUEST_ID_HEADER)
    return given if given is not None and _SANE_ID.match(given) else _IDS.new()


class AccessLogger(AbstractAccessLogger):
    """One line per answered request: method, path (no query string), status, size, time."""

    @property
    def enabled(self) -> bool:
        # Asked by aiohttp once per connection: when the line would be dropped (the level is
        # above INFO), the request is not timed and the line is not built.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        extra: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time * 1000, 1),
            "remote": request.remote,
        }
        self.logger.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra=extra | {"request_id": response.headers.get(REQUEST_ID_HEADER)},
        )
