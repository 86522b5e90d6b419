"""A fake Plex Media Server: ``/identity`` (who the server is, no token needed) and ``/`` (its
capabilities and name, for a valid ``X-Plex-Token`` only)."""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .base import FakeServer

_UNAUTHORISED = (
    "<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
)


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _xml(tag: str, attributes: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return ("1" if v else "0") if isinstance(v, bool) else html.escape(str(v), quote=True)

    attrs = " ".join(f'{k}="{value(v)}"' for k, v in attributes.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag} {attrs}>\n</{tag}>\n'


@dataclass
class FakePlexMediaServer(FakeServer):
    """Plex Media Server with a machine identifier, a version and a name.

    ``tokens`` are the ``X-Plex-Token`` values it accepts (the owner's token, typically);
    like a real server, it answers 401 to any other on the paths that need one.
    """

    machine_id: str = field(default_factory=lambda: secrets.token_hex(20))
    version: str = "1.41.3.9314-a0bfb8370"
    name: str = "Home Server"
    tokens: set[str] = field(default_factory=set)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/identity", self.identity)
        app.router.add_get("/", self.capabilities)

    def _authorised(self, request: web.Request) -> bool:
        token = request.headers.get("X-Plex-Token") or request.query.get("X-Plex-Token")
        return token is not None and token in self.tokens

    async def identity(self, request: web.Request) -> web.Response:
        container = {
            "size": 0,
            "claimed": True,
            "machineIdentifier": self.machine_id,
            "version": self.version,
        }
        if _wants_json(request):
            return web.json_response({"MediaContainer": container})
        # Plex answers XML unless the client asks for JSON.
        return web.Response(content_type="application/xml", text=_xml("MediaContainer", container))

    async def capabilities(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.Response(status=401, content_type="text/html", text=_UNAUTHORISED)
        container: dict[str, Any] = {
            "size": 3,
            "allowCameraUpload": False,
            "allowChannelAccess": True,
            "allowMediaDeletion": True,
            "allowSharing": True,
            "allowSync": False,
            "backgroundProcessing": True,
            "certificate": True,
            "companionProxy": True,
            "countryCode": "usa",
            "eventStream": True,
            "friendlyName": self.name,
            "hubSearch": True,
            "livetv": 0,
            "machineIdentifier": self.machine_id,
            "multiuser": True,
            "myPlex": True,
            "myPlexMappingState": "mapped",
            "myPlexSigninState": "ok",
            "myPlexSubscription": False,
            "platform": "Linux",
            "platformVersion": "6.1",
            "transcoderVideo": True,
            "updatedAt": 1718000000,
            "version": self.version,
        }
        directories = [
            {"count": 1, "key": "library", "title": "library"},
            {"count": 1, "key": "playlists", "title": "playlists"},
            {"count": 1, "key": "search", "title": "search"},
        ]
        if _wants_json(request):
            return web.json_response({"MediaContainer": container | {"Directory": directories}})
        body = _xml("MediaContainer", container).replace(
            "\n</MediaContainer>",
            "\n"
            + "".join(
                f'<Directory count="{d["count"]}" key="{d["key"]}" title="{d["title"]}" />\n'
                for d in directories
            )
            + "</MediaContainer>",
        )
        return web.Response(content_type="application/xml", text=body)
