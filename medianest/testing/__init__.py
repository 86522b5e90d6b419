"""Fake upstream servers that speak the real APIs, for MediaNest's tests and for plugin authors.

Each fake is an aiohttp app on a loopback port with the same paths, parameters, auth headers and
response shapes as the real service, plus fault controls (latency, error statuses, malformed
bodies, hanging connections, a closed port) shared through :class:`FakeServer`.
"""

from .base import FakeServer, Faults
from .plextv import FakePlexTV, PlexAccount, PlexServer
from .pms import FakePlexMediaServer

__all__ = [
    "FakePlexMediaServer",
    "FakePlexTV",
    "FakeServer",
    "Faults",
    "PlexAccount",
    "PlexServer",
]
