"""A fake Plex Media Server. For now it answers ``/identity``, which tells who the server is."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import web

from .base import FakeServer


@dataclass
class FakePlexMediaServer(FakeServer):
    """Plex Media Server with a machine identifier and a version."""

    machine_id: str = field(default_factory=lambda: secrets.token_hex(20))
    version: str = "1.41.3.9314-a0bfb8370"
    name: str = "Home Server"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/identity", self.identity)

    async def identity(self, request: web.Request) -> web.Response:
        container = {
            "size": 0,
            "claimed": True,
            "machineIdentifier": self.machine_id,
            "version": self.version,
        }
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"MediaContainer": container})
        # Plex answers XML unless the client asks for JSON.
        return web.Response(
            content_type="application/xml",
            text=(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<MediaContainer size="0" '
                f'claimed="1" machineIdentifier="{self.machine_id}" '
                f'version="{self.version}">\n</MediaContainer>\n'
            ),
        )
