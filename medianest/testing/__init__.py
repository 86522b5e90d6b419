"""Fake upstream servers that speak the real APIs, and a real portal to test a plugin in, for
MediaNest's tests and for plugin authors.

Each fake is an aiohttp app on a loopback port with the same paths, parameters, auth headers and
response shapes as the real service, plus fault controls (latency, error statuses, malformed
bodies, hanging connections, a closed port) shared through :class:`FakeServer`.
"""

from .arr import CatalogueMovie, CatalogueSeries, FakeArr, FakeRadarr, FakeSonarr
from .base import FakeServer, Faults
from .plextv import FakePlexTV, PlexAccount, PlexServer
from .pms import FakePlexMediaServer
from .portal import Events, Portal, PortalClient, SettingsRefused, subscribe
from .tautulli import FakeTautulli, TautulliUser
from .tmdb import FakeTMDB
from .youtube import FakeYouTube

__all__ = [
    "CatalogueMovie",
    "CatalogueSeries",
    "Events",
    "FakeArr",
    "FakePlexMediaServer",
    "FakePlexTV",
    "FakeRadarr",
    "FakeServer",
    "FakeSonarr",
    "FakeTMDB",
    "FakeTautulli",
    "FakeYouTube",
    "Faults",
    "PlexAccount",
    "PlexServer",
    "Portal",
    "PortalClient",
    "SettingsRefused",
    "TautulliUser",
    "subscribe",
]
