"""YouTube downloads end to end in the embedded default (jobs in the web process): real yt-dlp
and ffmpeg fetch short videos that ffmpeg made, served over loopback (yt-dlp's generic
extractor; the YouTube-host rule is lifted by the test setting), into the library folder.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, MakeClient, add_user, require, wait_for

from medianest import PluginContext, hookimpl
from medianest.core.settings import Settings
from medianest.testing import FakePlexMediaServer
from medianest.testing.pms import OTHER_VIDEOS
from medianest.testing.youtube import VideoSite, make_video

API = "/api/v1/youtube/downloads"


class ScanRecorder:
    """A media-server plugin that records the scans it is asked for (as the Plex plugin
    would run them)."""

    def __init__(self) -> None:
        self.scans: list[str | None] = []

    @hookimpl
    def refresh_library(self, path: str | None, plugin: PluginContext) -> list[str]:
        self.scans.append(path)
        return ["Home videos"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    require(shutil.which("ffmpeg"), "ffmpeg is not installed (apt-get install ffmpeg)")
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=3)


@pytest.fixture
async def site(clip: bytes) -> AsyncIterator[VideoSite]:
    fake = VideoSite(
        files={"clip.mp4": clip, "a.mp4": clip, "b.mp4": clip, "c.mp4": clip, "d.mp4": clip},
        playlists={"trip": ("Summer trip", ["a.mp4", "b.mp4", "c.mp4"])},
    )
    async with fake:
        yield fake


def make_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


async def setup(
    make_client: MakeClient, settings: Settings, library: Path, **extra: Any
) -> tuple[Client, ScanRecorder]:
    recorder = ScanRecorder()
    client = await make_client(settings, [("scanner", recorder)])
    make_folder(library)
    body = {"library_path": str(library), "allow_any_host_for_tests": True, **extra}
    resp = await client.put("/api/v1/plugins/youtube/settings", json=body)
    assert resp.status == 200, await resp.text()
    for name in ("youtube", "scanner"):
        resp = await client.post(f"/api/v1/plugins/{name}/enable")
        assert resp.status == 200, await resp.text()
    return client, recorder


async def submit(client: Client, url: str, **options: Any) -> dict[str, Any]:
    resp = await client.post(API, json={"url": url, **options})
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def status_of(client: Client, download_id: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/{download_id}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def until(
    client: Client, download_id: str, *statuses: str, seconds: float = 60
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await status_of(client, download_id))
        return found["status"] in statuses

    await wait_for(reached, seconds)
    return found


def media_files(library: Path) -> list[Path]:
    """What Plex would see: media files outside hidden folders."""
    return sorted(
        p
        for p in library.rglob("*")
        if p.is_file()
        and p.suffix in (".mp4", ".mkv", ".m4a", ".part")
        and not any(part.startswith(".") for part in p.relative_to(library).parts)
    )


async def scanned_once(recorder: ScanRecorder, folder: Path) -> None:
    """The media server is asked to scan ``folder``, once (just after the row completes)."""

    async def asked() -> bool:
        return bool(recorder.scans)

    await wait_for(asked, 10)
    await asyncio.sleep(0.5)
    assert recorder.scans == [str(folder)]


async def test_a_video_lands_in_the_users_folder_with_thumbnail_and_metadata(
    sqlite_settings: Settings, make_client: MakeClient, site: VideoSite, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    client, recorder = await setup(make_client, sqlite_settings, library)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"action": "subscribe", "topics": ["youtube"]})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        site.bytes_per_second = 60_000
        got = await submit(client, f"{site.url}/media/clip.mp4", title="Test pattern")
        assert got["status"] in ("queued", "downloading")
        events: list[dict[str, Any]] = []
        while True:
            message = await ws.receive_json(timeout=30)
            if message["data"]["id"] != got["id"]:
                continue
            events.append(message)
            if message["event"] == "status" and message["data"]["status"] == "completed":
                break
    done = await status_of(client, got["id"])
    assert done["status"] == "completed" and done["percent"] == 100
    # Progress arrived in order, more than once, and never past 100 %.
    percents = [e["data"]["percent"] for e in events if e["event"] == "progress"]
    assert len(percents) >= 3
    assert percents == sorted(percents) and percents[-1] <= 100
    assert [e["data"]["status"] for e in events if e["event"] == "status"][-1] == "completed"

    folder = library / "admin"
    assert [p.name for p in media_files(library)] == ["Test pattern.mp4"]
    assert (folder / "Test pattern.jpg").stat().st_size > 0
    nfo = (folder / "Test pattern.nfo").read_text()
    assert "<title>clip</title>" in nfo or "<title>Test pattern</title>" in nfo
    assert done["files"] == ["Test pattern.mp4"]
    # Nothing is left behind in the incoming folder, and Plex scanned the folder once.
    assert not list((library / ".incoming").glob("*/*"))
    await scanned_once(recorder, folder)


async def test_a_playlist_becomes_a_folder_of_numbered_videos(
    sqlite_settings: Settings, make_client: MakeClient, site: VideoSite, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    client, recorder = await setup(make_client, sqlite_settings, library)
    got = await submit(client, f"{site.url}/list/trip")
    done = await until(client, got["id"], "completed", "failed")
    assert done["status"] == "completed", done["reason"]
    assert done["items"] == 3
    folder = library / "admin" / "Summer trip"
    names = [p.name for p in media_files(library)]
    assert names == [
        "01 - Summer trip (1).mp4",
        "02 - Summer trip (2).mp4",
        "03 - Summer trip (3).mp4",
    ]
    for name in names:
        stem = name.removesuffix(".mp4")
        assert (folder / f"{stem}.jpg").stat().st_size > 0
        # The playlist is the videos' collection.
        assert "<set><name>Summer trip</name></set>" in (folder / f"{stem}.nfo").read_text()
    await scanned_once(recorder, folder)


async def test_the_same_link_twice_is_refused(
    sqlite_settings: Settings, make_client: MakeClient, site: VideoSite, tmp_path: Path
) -> None:
    client, _ = await setup(make_client, sqlite_settings, tmp_path / "library")
    url = f"{site.url}/media/clip.mp4"
    got = await submit(client, url)
    resp = await client.post(API, json={"url": url})
    assert resp.status == 409
    assert "already in your downloads" in (await resp.json())["error"]["message"]
    await until(client, got["id"], "completed")
    resp = await client.post(API, json={"url": url})
    assert resp.status == 409
    assert "already downloaded" in (await resp.json())["error"]["message"]


async def test_cancel_mid_download_leaves_nothing_in_the_library(
    sqlite_settings: Settings, make_client: MakeClient, site: VideoSite, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    client, recorder = await setup(make_client, sqlite_settings, library)
    site.bytes_per_second = 10_000
    got = await submit(client, f"{site.url}/media/clip.mp4")
    row = await until(client, got["id"], "downloading")

    async def some_progress() -> bool:
        return (await status_of(client, got["id"]))["percent"] > 5

    await wait_for(some_progress, 30)
    resp = await client.delete(f"{API}/{row['id']}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "cancelled"

    async def cleared() -> bool:
        return not list(library.rglob("*.mp4*")) and not list(library.rglob("*.part"))

    await wait_for(cleared, 15)
    await asyncio.sleep(1)
    assert (await status_of(client, got["id"]))["status"] == "cancelled"
    assert media_files(library) == [] and recorder.scans == []
    # A cancelled download can be retried, and then completes.
    site.bytes_per_second = 0
    resp = await client.post(f"{API}/{got['id']}/retry")
    assert resp.status == 200, await resp.text()
    assert (await until(client, got["id"], "completed", "failed"))["status"] == "completed"


async def test_quota_per_hour_and_storage_limit(
    sqlite_settings: Settings, make_client: MakeClient, site: VideoSite, tmp_path: Path
) -> None:
    client, _ = await setup(
        make_client, sqlite_settings, tmp_path / "library", downloads_per_hour=2
    )
    first = await submit(client, f"{site.url}/media/a.mp4")
    second = await submit(client, f"{site.url}/media/b.mp4")
    resp = await client.post(API, json={"url": f"{site.url}/media/c.mp4"})
    assert resp.status == 429
    assert "your limit is 2" in (await resp.json())["error"]["message"]

    # A user's own quota (set on the users page) beats the default.
    app = client.server.app
    assert app is not None
    await add_user(app, "bob", "bob's long password", permissions=frozenset({"youtube"}))
    bob = Client(client.server)
    await bob.sign_in("bob", "bob's long password")
    users = await (await client.get("/api/v1/users")).json()
    bob_id = next(u["id"] for u in users["users"] if u["username"] == "bob")
    resp = await client.patch(
        f"/api/v1/users/{bob_id}", json={"quotas": {"downloads": {"limit": 0}}}
    )
    assert resp.status == 200, await resp.text()
    resp = await bob.post(API, json={"url": f"{site.url}/media/c.mp4"})
    assert resp.status == 429 and "your limit is 0" in (await resp.json())["error"]["message"]
    await bob.session.close()

    # Storage: a download bigger than what is left fails with the reason, leaving nothing.
    await until(client, first["id"], "completed")
    await until(client, second["id"], "completed")
    size = len(site.files["a.mp4"])

    async def storage(times: float) -> None:
        body = {
            "library_path": str(tmp_path / "library"),
            "allow_any_host_for_tests": True,
            "downloads_per_hour": 100,
            "storage_per_user_gb": size * times / 2**30,
        }
        resp = await client.put("/api/v1/plugins/youtube/settings", json=body)
        assert resp.status == 200, await resp.text()

    # Half a video left: admitted, then refused by size once yt-dlp knows it.
    await storage(2.5)
    third = await submit(client, f"{site.url}/media/d.mp4")
    done = await until(client, third["id"], "completed", "failed")
    assert done["status"] == "failed"
    assert "left of your storage" in done["reason"]
    assert [p.name for p in media_files(tmp_path / "library")] == ["a.mp4", "b.mp4"]
    # Nothing left: refused at once.
    await storage(2)
    resp = await client.post(API, json={"url": f"{site.url}/media/c.mp4"})
    assert resp.status == 413
    assert "ask an administrator to make room" in (await resp.json())["error"]["message"]


async def test_a_users_further_downloads_wait_their_turn(
    sqlite_settings: Settings, make_client: MakeClient, site: VideoSite, tmp_path: Path
) -> None:
    client, _ = await setup(
        make_client, sqlite_settings, tmp_path / "library", concurrent_per_user=1
    )
    site.bytes_per_second = 60_000
    first = await submit(client, f"{site.url}/media/a.mp4")
    second = await submit(client, f"{site.url}/media/b.mp4")
    assert second["status"] == "waiting"
    await until(client, first["id"], "downloading")
    assert (await status_of(client, second["id"]))["status"] == "waiting"
    await until(client, first["id"], "completed")
    # Its turn comes as soon as the first is done.
    assert (await until(client, second["id"], "completed", "failed"))["status"] == "completed"


# --- a playlist becomes a Plex collection ------------------------------------------------------

PLEX_TOKEN = "owner-token-0123456789abcdef"


@pytest.fixture
async def pms(tmp_path: Path) -> AsyncIterator[FakePlexMediaServer]:
    """A Plex Media Server whose "Other Videos" library is the YouTube library folder; its scans
    add the new files a second after they are asked for, as a real scan runs after the answer."""
    library = tmp_path / "library"
    make_folder(library)
    fake = FakePlexMediaServer(tokens={PLEX_TOKEN}, seed=False, scan_delay=1.0)
    fake.add_library(
        "Other Videos", "movie", [str(library)], agent=OTHER_VIDEOS[0], scanner=OTHER_VIDEOS[1]
    )
    async with fake:
        yield fake


async def with_plex(
    make_client: MakeClient,
    settings: Settings,
    library: Path,
    pms: FakePlexMediaServer,
    *,
    enable: bool = True,
) -> Client:
    """MediaNest with the YouTube plugin and (unless told not to) the Plex plugin enabled."""
    client = await make_client(settings)
    make_folder(library)
    body = {"library_path": str(library), "allow_any_host_for_tests": True}
    resp = await client.put("/api/v1/plugins/youtube/settings", json=body)
    assert resp.status == 200, await resp.text()
    resp = await client.put(
        "/api/v1/plugins/plex/settings", json={"url": pms.url, "token": PLEX_TOKEN}
    )
    assert resp.status == 200, await resp.text()
    for name in ("youtube", "plex") if enable else ("youtube",):
        resp = await client.post(f"/api/v1/plugins/{name}/enable")
        assert resp.status == 200, await resp.text()
    return client


def in_collection(pms: FakePlexMediaServer, title: str) -> list[str]:
    """The files of the items of the collection ``title`` (none when there is no such one)."""
    found = [c for c in pms.collections.values() if c.title == title]
    return [str(i.file) for c in found for i in c.items]


async def test_a_playlist_becomes_a_plex_collection_and_the_same_title_adds_to_it(
    sqlite_settings: Settings,
    make_client: MakeClient,
    site: VideoSite,
    tmp_path: Path,
    pms: FakePlexMediaServer,
) -> None:
    library = tmp_path / "library"
    client = await with_plex(make_client, sqlite_settings, library, pms)
    got = await submit(client, f"{site.url}/list/trip")
    done = await until(client, got["id"], "completed", "failed")
    assert done["status"] == "completed", done["reason"]
    folder = library / "admin" / "Summer trip"
    first = [str(p) for p in media_files(library)]
    assert len(first) == 3

    async def collected(count: int) -> bool:
        return len(in_collection(pms, "Summer trip")) == count

    # Plex scanned the folder, added the videos a second later, and they became one collection.
    await wait_for(lambda: collected(3), 30)
    assert pms.refreshes == [("1", str(folder))]
    (collection,) = pms.collections.values()
    assert in_collection(pms, "Summer trip") == first
    assert (collection.library.title, collection.subtype) == ("Other Videos", "movie")

    # Another playlist of the same title: its videos join that collection.
    site.playlists["trip-more"] = ("Summer trip", ["d.mp4", "clip.mp4"])
    more = await submit(client, f"{site.url}/list/trip-more")
    done = await until(client, more["id"], "completed", "failed")
    assert done["status"] == "completed", done["reason"]
    added = sorted(set(map(str, media_files(library))) - set(first))
    assert len(added) == 2
    await wait_for(lambda: collected(5), 30)
    assert len(pms.collections) == 1
    assert in_collection(pms, "Summer trip") == first + added
    changes = [(m, p) for m, p, _ in pms.collection_requests if m != "GET"]
    assert changes == [
        ("POST", "/library/collections"),
        ("PUT", f"/library/collections/{collection.rating_key}/items"),
    ]


async def test_a_single_video_makes_no_collection(
    sqlite_settings: Settings,
    make_client: MakeClient,
    site: VideoSite,
    tmp_path: Path,
    pms: FakePlexMediaServer,
) -> None:
    library = tmp_path / "library"
    client = await with_plex(make_client, sqlite_settings, library, pms)
    got = await submit(client, f"{site.url}/media/clip.mp4")
    assert (await until(client, got["id"], "completed", "failed"))["status"] == "completed"

    async def scanned() -> bool:
        return len(pms.items) == 1

    await wait_for(scanned, 10)
    await asyncio.sleep(1)
    assert pms.collections == {} and pms.collection_requests == []


async def test_without_the_plex_plugin_nothing_is_asked_of_plex(
    sqlite_settings: Settings,
    make_client: MakeClient,
    site: VideoSite,
    tmp_path: Path,
    pms: FakePlexMediaServer,
) -> None:
    library = tmp_path / "library"
    client = await with_plex(make_client, sqlite_settings, library, pms, enable=False)
    pms.calls.clear()  # the connection check of the saved settings
    got = await submit(client, f"{site.url}/list/trip")
    done = await until(client, got["id"], "completed", "failed")
    assert done["status"] == "completed", done["reason"]
    assert len(media_files(library)) == 3
    await asyncio.sleep(2)
    assert not pms.calls and pms.collections == {}


async def test_plex_failing_leaves_the_download_completed_and_is_logged_once(
    sqlite_settings: Settings,
    make_client: MakeClient,
    site: VideoSite,
    tmp_path: Path,
    pms: FakePlexMediaServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    library = tmp_path / "library"
    client = await with_plex(make_client, sqlite_settings, library, pms)
    pms.faults.status = 500
    got = await submit(client, f"{site.url}/list/trip")
    done = await until(client, got["id"], "completed", "failed")
    assert done["status"] == "completed", done["reason"]
    assert len(media_files(library)) == 3

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "collect_media" in r.getMessage()]

    async def logged() -> bool:
        return bool(failures())

    await wait_for(logged, 30)
    await asyncio.sleep(1)
    assert len(failures()) == 1
    assert pms.collections == {}
    assert (await status_of(client, got["id"]))["status"] == "completed"
