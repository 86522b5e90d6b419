"""Posters, passed through MediaNest: the server wants its token for images too, and a token
must never reach a browser, so pages point at ``/plex/posters/<item>`` and MediaNest fetches the
image (scaled by the server, kept for a day in the shared cache).

Only posters of items MediaNest shows are served: those of the watched libraries it scanned and
those in the recently-added widget.
"""

from __future__ import annotations

import base64

from aiohttp import web

from medianest import PluginContext, ServiceError

from . import availability, pollers
from .pollers import NotReady

WIDTH, HEIGHT = 184, 276
KEEP_SECONDS = 86400.0
PATH = "/plex/posters/{rating_key}"
_KINDS = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"RIFF", "image/webp"),
)


async def _shown(plugin: PluginContext, rating_key: str) -> bool:
    plex = await pollers.ready(plugin)
    if isinstance(plex, NotReady):
        return False
    index = await plugin.cache.get(availability.index_key(plex))
    if index is not None and (rating_key in index["movies"] or rating_key in index["shows"]):
        return True
    recent = await pollers.RECENT.latest(plugin)
    return (
        not isinstance(recent, NotReady)
        and recent.value is not None
        and any(i.rating_key == rating_key for i in recent.value.items)
    )


async def poster(request: web.Request, plugin: PluginContext) -> web.StreamResponse:
    rating_key = request.match_info["rating_key"]
    if not rating_key.isdigit() or not await _shown(plugin, rating_key):
        raise web.HTTPNotFound()
    plex = await pollers.ready(plugin)
    assert not isinstance(plex, NotReady)

    async def fetch() -> str:
        return base64.b64encode(await plex.poster(rating_key, WIDTH, HEIGHT)).decode()

    try:
        encoded = await plugin.cache.get_or_compute(
            f"plex:poster:{availability.fingerprint(plex)}:{rating_key}", KEEP_SECONDS, fetch
        )
    except ServiceError as exc:
        plugin.log.info("no poster for item %s: %s", rating_key, exc)
        raise web.HTTPBadGateway() from None
    body = base64.b64decode(encoded)
    kind = next((k for magic, k in _KINDS if body.startswith(magic)), None)
    if kind is None:
        raise web.HTTPBadGateway()
    return web.Response(
        body=body, content_type=kind, headers={"Cache-Control": "private, max-age=86400"}
    )
