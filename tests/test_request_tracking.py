"""What the media servers hold is kept per media item; a check that finds what was kept
already writes nothing, and one that finds a change keeps the change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from medianest.core import db
from medianest.core.extensions import Availability, SeasonAvailability
from medianest.core.settings import Settings
from medianest.requests import workflow as requests


def plex(seasons: dict[int, int], *, scanned: datetime) -> Availability:
    return Availability(
        source="plex",
        server_id="server-1",
        server_name="Home Server",
        media_type="tv",
        available=any(seasons.values()),
        seasons={n: SeasonAvailability(present, present) for n, present in seasons.items()},
        key="42",
        checked_at=scanned,
    )


async def test_a_check_that_finds_nothing_new_writes_nothing(db_settings: Settings) -> None:
    engine = db.create_engine(db_settings)
    try:
        await db.migrate(engine)
        series, film = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                insert(requests.media_t),
                [
                    {"id": series, "type": "tv", "tmdb_id": 1399, "title": "Game of Thrones"},
                    {"id": film, "type": "movie", "tmdb_id": 604, "title": "The Matrix Reloaded"},
                ],
            )
        episodes = {
            "seasons": [{"number": 1, "episode_count": 10}, {"number": 2, "episode_count": 8}]
        }
        meta = {series: episodes, film: {}}

        absent = Availability("plex", "server-1", "Home Server", "movie", False, checked_at=now)
        first = {series: [plex({1: 4}, scanned=now)], film: [absent]}
        assert await requests.save_availabilities(engine, first) == 2
        # The next scan finds the same: nothing is written.
        later = now + timedelta(minutes=5)
        same = {series: [plex({1: 4}, scanned=later)], film: [absent]}
        assert await requests.save_availabilities(engine, same) == 0
        held = await requests.stored_holdings(engine, meta)
        assert held[series].seasons == {1: (4, 10)} and held[series].partial_seasons() == {1}
        assert not held[film].available

        # More episodes of season 1, and season 2 arrives: that is kept.
        more = {series: [plex({1: 10, 2: 3}, scanned=later)], film: [absent]}
        assert await requests.save_availabilities(engine, more) == 1
        held = await requests.stored_holdings(engine, meta)
        assert held[series].complete_seasons() == {1}
        assert held[series].seasons[2] == (3, 8)
        assert held[series].servers == ("Home Server",)
    finally:
        await engine.dispose()
