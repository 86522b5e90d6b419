"""What may be downloaded: links are checked before anything is fetched, and previewed through
the YouTube Data API (the fake) when a key is set, through yt-dlp otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, MakeClient, add_user, require
from servers import _command

from medianest.core.settings import Settings
from medianest.testing import FakeYouTube
from medianest.testing.youtube import VideoSite, make_video

API = "/api/v1/youtube/downloads"


@pytest.fixture
async def youtube() -> AsyncIterator[FakeYouTube]:
    async with FakeYouTube() as fake:
        yield fake  # type: ignore[misc]


async def setup(
    make_client: MakeClient, settings: Settings, tmp_path: Path, **extra: Any
) -> Client:
    client = await make_client(settings)
    library = tmp_path / "library"
    library.mkdir()
    body = {"library_path": str(library), **extra}
    resp = await client.put("/api/v1/plugins/youtube/settings", json=body)
    assert resp.status == 200, await resp.text()
    assert (await client.post("/api/v1/plugins/youtube/enable")).status == 200
    return client


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "file:// links are refused"),
        ("http://127.0.0.1:8080/watch?v=aqz-KE-bpKQ", "127.0.0.1 is a private or local address"),
        ("http://[::1]/video.mp4", "::1 is a private or local address"),
        ("http://192.168.1.10/video.mp4", "private or local address"),
        ("http://localhost/video.mp4", "localhost is a private or local address"),
        ("https://vimeo.com/76979871", "vimeo.com is not YouTube"),
        ("https://www.youtube.com.evil.example/watch?v=aqz-KE-bpKQ", "is not YouTube"),
        ("https://user:pw@www.youtube.com/watch?v=aqz-KE-bpKQ", "user name or password"),
        ("javascript:alert(1)", "Only http(s) links"),
        ("www.youtube.com/watch?v=aqz-KE-bpKQ", "Only http(s) links"),
        ("https://www.youtube.com/feed/trending", "names no video, playlist or channel"),
        ("", "Paste a YouTube link"),
        ("x" * 20_000, "That is not a link"),
    ],
)
async def test_bad_links_are_refused_before_anything_is_fetched(
    sqlite_settings: Settings, make_client: MakeClient, tmp_path: Path, url: str, says: str
) -> None:
    client = await setup(make_client, sqlite_settings, tmp_path)
    for path in (API, "/api/v1/youtube/preview"):
        resp = await client.post(path, json={"url": url})
        assert resp.status == 400, await resp.text()
        assert says in (await resp.json())["error"]["message"]
    assert (await (await client.get(API)).json())["downloads"] == []


async def test_twenty_kilobytes_of_garbage_is_a_clear_400(
    sqlite_settings: Settings, make_client: MakeClient, tmp_path: Path
) -> None:
    client = await setup(make_client, sqlite_settings, tmp_path)
    garbage = "".join(chr(33 + (i * 7919) % 90) for i in range(20 * 1024))
    resp = await client.post(API, json={"url": garbage, "quality": "720p"})
    assert resp.status == 400
    assert "That is not a link" in (await resp.json())["error"]["message"]
    # Options outside the choices are refused with the field named.
    resp = await client.post(API, json={"url": "https://youtu.be/aqz-KE-bpKQ", "quality": "8K"})
    assert resp.status == 422
    assert (await resp.json())["error"]["details"][0]["field"] == "quality"


async def test_the_preview_comes_from_the_data_api_when_a_key_is_set(
    sqlite_settings: Settings, make_client: MakeClient, tmp_path: Path, youtube: FakeYouTube
) -> None:
    client = await setup(
        make_client, sqlite_settings, tmp_path, api_key=youtube.key, api_url=youtube.url
    )
    resp = await client.post(
        "/api/v1/youtube/preview", json={"url": "https://www.youtube.com/watch?v=aqz-KE-bpKQ"}
    )
    assert resp.status == 200, await resp.text()
    video = await resp.json()
    assert video["title"].startswith("Big Buck Bunny")
    assert video["channel"] == "Blender"
    assert video["duration"] == 10 * 60 + 35
    assert video["thumbnail"] == "https://i.ytimg.com/vi/aqz-KE-bpKQ/hqdefault.jpg"
    assert video["source"] == "api"

    resp = await client.post(
        "/api/v1/youtube/preview",
        json={"url": "https://www.youtube.com/playlist?list=PL6B3937A5D230E335"},
    )
    playlist = await resp.json()
    assert playlist["kind"] == "playlist" and playlist["title"] == "Blender Open Movies"
    assert [i["title"][:6] for i in playlist["items"]] == ["Big Bu", "Sintel", "Tears "]
    assert playlist["items"][1]["duration"] == 14 * 60 + 48

    resp = await client.post(
        "/api/v1/youtube/preview", json={"url": "https://www.youtube.com/@blender"}
    )
    channel = await resp.json()
    assert channel["kind"] == "channel" and channel["title"] == "Blender"
    assert len(channel["items"]) == 3


async def test_without_a_key_the_preview_comes_from_yt_dlp(
    sqlite_settings: Settings, make_client: MakeClient, tmp_path: Path
) -> None:
    require(shutil.which("ffmpeg"), "ffmpeg is not installed (apt-get install ffmpeg)")
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    site = VideoSite(
        files={"a.mp4": clip, "b.mp4": clip}, playlists={"two": ("Two clips", ["a.mp4", "b.mp4"])}
    )
    async with site:
        client = await setup(make_client, sqlite_settings, tmp_path, allow_any_host_for_tests=True)
        resp = await client.post("/api/v1/youtube/preview", json={"url": f"{site.url}/list/two"})
        assert resp.status == 200, await resp.text()
        found = await resp.json()
        assert found["kind"] == "playlist" and found["title"] == "Two clips"
        assert [i["title"] for i in found["items"]] == ["Two clips (1)", "Two clips (2)"]
        assert found["source"] == "yt-dlp"
        resp = await client.post("/api/v1/youtube/preview", json={"url": f"{site.url}/list/none"})
        assert resp.status == 422
        assert "Nothing to download at that link" in (await resp.json())["error"]["message"]


async def test_downloads_need_the_permission_and_are_private(
    sqlite_settings: Settings, make_client: MakeClient, tmp_path: Path
) -> None:
    client = await setup(make_client, sqlite_settings, tmp_path)
    app = client.server.app
    assert app is not None
    await add_user(app, "carol", "carol's long password", permissions=frozenset())
    await add_user(app, "dave", "dave's long password", permissions=frozenset({"youtube"}))
    carol, dave = Client(client.server), Client(client.server)
    try:
        await carol.sign_in("carol", "carol's long password")
        await dave.sign_in("dave", "dave's long password")
        resp = await carol.post(API, json={"url": "https://youtu.be/aqz-KE-bpKQ"})
        assert resp.status == 403
        assert "Download from YouTube" in (await resp.json())["error"]["message"]
        assert (await carol.get("/youtube")).status == 403

        # (A closed local port: the download fails at once, without reaching out anywhere.)
        resp = await client.put(
            "/api/v1/plugins/youtube/settings",
            json={"library_path": str(tmp_path / "library"), "allow_any_host_for_tests": True},
        )
        assert resp.status == 200
        resp = await client.post(API, json={"url": "http://127.0.0.1:9/clip.mp4"})
        assert resp.status == 200, await resp.text()
        mine = await resp.json()
        assert mine["kind"] == "video"
        # Another user neither sees nor cancels it.
        assert (await (await dave.get(API)).json())["downloads"] == []
        assert (await dave.get(f"{API}/{mine['id']}")).status == 404
        assert (await dave.delete(f"{API}/{mine['id']}")).status == 404
        assert (await dave.get(f"{API}/not-an-id")).status == 404
        page = await (await dave.get("/youtube")).text()
        assert "Nothing downloaded yet" in page
    finally:
        await carol.session.close()
        await dave.session.close()


def test_a_worker_needs_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIANEST_")}
    env["MEDIANEST_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [*_command(), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "a worker needs Redis (MEDIANEST_REDIS_URL)" in result.stderr
