"""The download job: yt-dlp in a thread, its progress as websocket events, files put in place.

yt-dlp writes into a hidden folder of the library (``.incoming/<download id>``, which a
``.plexignore`` hides from Plex as well); only complete files, with their thumbnail and ``.nfo``
beside them, are moved (renamed, so atomically) into the user's folder. A job that is cancelled,
fails or whose worker is killed leaves nothing in the library: the next attempt, or the
reaper, clears its incoming folder.

Once a download is complete, the media server is asked to scan its folder and, for a playlist or
a channel, to gather its videos in a collection named after it. Gathering them waits for the
server to add the files (minutes, at worst), so it runs beside the job rather than in it: the
download is complete and its worker slot free at once, and a media server that fails or is slow
never fails or holds up a download.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from medianest import JobRun, PluginContext

from . import store
from .settings import Settings

INCOMING = ".incoming"
# The collections being made beside the jobs, in the plugin's state.
# Progress events per job and second, at most; the row is written less often.
EVENTS_PER_SECOND = 4
ROW_EVERY = 1.0
HEARTBEAT_EVERY = 2.0
MEDIA_SUFFIXES = {".mp4", ".mkv", ".webm", ".m4a", ".mp3", ".opus", ".ogg"}
QUALITIES = ("best", "2160p", "1440p", "1080p", "720p", "480p", "360p")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Refused(Exception):
    """A download that must not be tried again (too big for the user's storage, say)."""


def safe_name(text: str, fallback: str = "video", limit: int = 120) -> str:
    """``text`` as one file or folder name: no separators, no control characters, no leading
    dots (no hidden files, no ``..``), not too long for any filesystem."""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip().lstrip(".").strip()
    text = text[:limit].rstrip(" .")
    return text or fallback


def library(settings: Settings) -> Path:
    return Path(settings.library_path)


def user_folder(settings: Settings, row: dict[str, Any]) -> Path:
    return library(settings) / safe_name(row["options"].get("user") or "", "user")


def incoming(settings: Settings, download_id: str) -> Path:
    return library(settings) / INCOMING / download_id


def clear_incoming(settings: Settings, download_id: str) -> None:
    if settings.library_path:
        shutil.rmtree(incoming(settings, download_id), ignore_errors=True)


def prepare(settings: Settings, download_id: str) -> Path:
    """An empty incoming folder for this attempt (what an earlier one left is removed)."""
    clear_incoming(settings, download_id)
    work = incoming(settings, download_id)
    work.mkdir(parents=True, exist_ok=True)
    ignore = work.parent / ".plexignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return work


def format_options(options: dict[str, Any]) -> dict[str, Any]:
    """yt-dlp's options for the user's choice of quality, container and audio only."""
    container = options.get("container", "mp4")
    if options.get("audio_only"):
        return {
            "format": "bestaudio/best",
            "postprocessors": [
                {"key": "FFmpegExtractAudio", "preferredcodec": "m4a"},
            ],
        }
    quality = options.get("quality", "best")
    if quality == "best":
        chosen = "bestvideo*+bestaudio/best"
    else:
        height = int(quality.rstrip("p"))
        chosen = (
            f"bestvideo*[height<={height}]+bestaudio/best[height<={height}]/"
            "bestvideo*+bestaudio/best"
        )
    return {
        "format": chosen,
        "merge_output_format": container,
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": container}],
    }


@dataclass
class Progress:
    """What the yt-dlp thread reports and the job's event loop reads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    percent: float = 0.0
    speed: float | None = None
    eta: int | None = None
    item: int = 1
    items: int = 1
    downloaded: int = 0
    too_big: str = ""
    budget_bytes: int = 0
    done_bytes: int = 0  # of the items finished before this one

    def hook(self, report: dict[str, Any]) -> None:
        # yt-dlp calls the hook from its thread: it is loaded by then (see _download).
        from yt_dlp.utils import DownloadCancelled

        if self.stop.is_set():
            raise DownloadCancelled("cancelled")
        info = report.get("info_dict") or {}
        with self.lock:
            index = info.get("playlist_index") or self.item
            self.items = max(self.items, int(info.get("n_entries") or 1))
            if index != self.item:
                self.done_bytes += self.downloaded
                self.item, self.downloaded = int(index), 0
            total = report.get("total_bytes") or report.get("total_bytes_estimate") or 0
            self.downloaded = int(report.get("downloaded_bytes") or 0)
            if (
                self.budget_bytes
                and max(total, self.downloaded) + self.done_bytes > self.budget_bytes
            ):
                left = self.budget_bytes / 2**20
                self.too_big = f"it would take more than the {left:.1f} MB left of your storage"
                raise DownloadCancelled(self.too_big)
            fraction = (self.downloaded / total) if total else 0.0
            if report.get("status") == "finished":
                fraction = 1.0
            overall = ((self.item - 1) + min(fraction, 1.0)) / max(self.items, 1) * 100
            # Never backwards within an attempt: a video's audio stream restarts at 0 %.
            self.percent = max(self.percent, min(overall, 99.9))
            self.speed = report.get("speed")
            self.eta = report.get("eta")

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "percent": round(self.percent, 1),
                "speed": self.speed,
                "eta": self.eta,
                "item": self.item,
                "items": self.items,
            }


class _Log:
    """yt-dlp's messages into the plugin's log, at debug level but for errors."""

    def __init__(self, plugin: PluginContext) -> None:
        self.log = plugin.log

    def debug(self, message: str) -> None:
        self.log.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        self.log.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        self.log.debug("yt-dlp: %s", message)

    def error(self, message: str) -> None:
        self.log.warning("yt-dlp: %s", _ANSI.sub("", message))


def _describe(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).removeprefix("ERROR: ").strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _download(
    url: str, folder: Path, options: dict[str, Any], progress: Progress, log: _Log
) -> dict[str, Any]:
    """Run yt-dlp (blocking: in a thread). Returns its sanitised info."""
    # yt-dlp loads every site's extractor: imported by the first download (in its thread),
    # not when the plugin loads.
    import yt_dlp

    params: dict[str, Any] = {
        "outtmpl": {"default": str(folder / "%(id)s.%(ext)s")},
        "paths": {"home": str(folder), "temp": str(folder)},
        "progress_hooks": [progress.hook],
        "logger": log,
        "quiet": True,
        "noprogress": True,
        "noplaylist": False,
        "writethumbnail": True,
        "restrictfilenames": True,
        "socket_timeout": 30,
        "retries": 3,
        "overwrites": True,
        "continuedl": False,
        **format_options(options),
    }
    if progress.budget_bytes:
        params["max_filesize"] = progress.budget_bytes
    params["postprocessors"] = [
        *params["postprocessors"],
        {"key": "FFmpegThumbnailsConvertor", "format": "jpg", "when": "before_dl"},
        {"key": "FFmpegMetadata", "add_metadata": True, "add_chapters": False},
    ]
    with yt_dlp.YoutubeDL(params) as ydl:
        info = ydl.extract_info(url, download=True)
        return dict(ydl.sanitize_info(info) or {})


def _entries(info: dict[str, Any]) -> list[dict[str, Any]]:
    if info.get("_type") == "playlist" or info.get("entries") is not None:
        found = []
        for entry in info.get("entries") or []:
            if entry:
                found.extend(_entries(entry))
        return found
    return [info]


def _produced(info: dict[str, Any]) -> list[str]:
    """The media files yt-dlp wrote (none when it skipped a file over ``max_filesize``)."""
    return [
        d["filepath"]
        for e in _entries(info)
        for d in e.get("requested_downloads") or []
        if d.get("filepath") and Path(d["filepath"]).exists()
    ]


def _thumbnail(media: Path, target: Path) -> None:
    """A frame of the video as its thumbnail, when the site offered none (ffmpeg)."""
    for at in ("1", "0"):
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", at, "-i", str(media),
             "-frames:v", "1", "-q:v", "3", str(target)],
            capture_output=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        if target.exists() and target.stat().st_size:
            return


def _nfo(entry: dict[str, Any], thumb: str | None, collection: str = "") -> str:
    """A Kodi/Plex-style ``.nfo`` for a video; a playlist's videos name it as their ``set``,
    which nfo-reading Plex agents turn into a collection."""
    date = str(entry.get("upload_date") or "")
    premiered = f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else ""
    fields = {
        "title": entry.get("title") or "",
        "plot": entry.get("description") or "",
        "studio": entry.get("channel") or entry.get("uploader") or "",
        "premiered": premiered,
        "runtime": str(round((entry.get("duration") or 0) / 60)) if entry.get("duration") else "",
        "thumb": thumb or "",
        "uniqueid": entry.get("id") or "",
        "trailer": entry.get("webpage_url") or "",
    }
    lines = [f"  <{k}>{escape(str(v))}</{k}>" for k, v in fields.items() if v]
    if collection:
        lines.append(f"  <set><name>{escape(collection)}</name></set>")
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<movie>\n'
        + "\n".join(lines)
        + "\n</movie>\n"
    )


def _free(path: Path) -> Path:
    """``path``, or ``name (2).ext``… when it is taken."""
    if not path.exists():
        return path
    for n in range(2, 1000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)


def collection_of(folder: Path, settings: Settings, row: dict[str, Any]) -> str:
    """The collection a download's videos belong to: its folder's name for a playlist or a
    channel (which has a folder of its own), none for a single video."""
    return folder.name if folder != user_folder(settings, row) else ""


def place(
    info: dict[str, Any], work: Path, settings: Settings, row: dict[str, Any]
) -> tuple[Path, list[str], int]:
    """Move what yt-dlp made into the user's folder (a playlist or channel into a folder of its
    own). Returns the folder, the files placed and their size in bytes."""
    users = user_folder(settings, row)
    entries = _entries(info)
    if row["kind"] != "video" or len(entries) > 1:
        folder = users / safe_name(info.get("title") or row["title"] or "Playlist", "Playlist")
    else:
        folder = users
    collection = collection_of(folder, settings, row)
    folder.mkdir(parents=True, exist_ok=True)
    placed: list[str] = []
    size = 0
    for n, entry in enumerate(entries, start=1):
        downloads = entry.get("requested_downloads") or []
        media = next(
            (
                Path(d["filepath"])
                for d in downloads
                if d.get("filepath") and Path(d["filepath"]).exists()
            ),
            None,
        )
        if media is None:
            continue
        # A single video keeps the title its user saw in the preview.
        chosen = row["title"] if folder == users and len(entries) == 1 else ""
        title = safe_name(chosen or entry.get("title") or entry.get("id") or f"Video {n}")
        name = f"{n:02d} - {title}" if folder != users else title
        target = _free(folder / f"{name}{media.suffix}")
        name = target.stem
        thumb_source = next(
            (
                Path(t["filepath"])
                for t in entry.get("thumbnails") or []
                if t.get("filepath") and Path(t["filepath"]).exists()
            ),
            None,
        )
        thumb_work = work / f"{entry.get('id') or n}.thumb.jpg"
        if thumb_source is not None and thumb_source.suffix.lower() in (".jpg", ".jpeg"):
            thumb_work = thumb_source
        elif media.suffix not in (".m4a", ".mp3", ".opus", ".ogg"):
            _thumbnail(media, thumb_work)
        thumb = thumb_work if thumb_work.exists() else None
        (work / f"{name}.nfo").write_text(
            _nfo(entry, f"{name}.jpg" if thumb else None, collection), encoding="utf-8"
        )
        # Thumbnail and .nfo first, the video last: when Plex sees the video, all is there.
        if thumb is not None:
            thumb.replace(folder / f"{name}.jpg")
        (work / f"{name}.nfo").replace(folder / f"{name}.nfo")
        size += media.stat().st_size
        media.replace(target)
        placed.append(str(target))
    if not placed:
        raise RuntimeError("yt-dlp finished without producing a file")
    return folder, placed, size


async def download_job(plugin: PluginContext, run: JobRun, download_id: str) -> None:
    """One attempt at one download (the job function)."""
    settings: Settings = plugin.settings
    key = uuid.UUID(download_id)
    row = await store.get(plugin, key)
    if row is None or row["status"] in store.FINISHED:
        return
    if not settings.library_path:
        await _finish(plugin, key, "failed", "No library folder is set; an administrator sets one.")
        return
    if not await store.claim(plugin, key, run.attempt):
        return
    row = await store.get(plugin, key) or row
    await store.announce(plugin, row)
    work = await asyncio.to_thread(prepare, settings, download_id)
    progress = Progress()
    progress.budget_bytes = max(await store.storage_left_kib(plugin, row["user_id"]), 0) * 1024
    loop = asyncio.get_running_loop()
    thread = loop.run_in_executor(
        None, _download, row["url"], work, dict(row["options"]), progress, _Log(plugin)
    )
    try:
        cancelled = await _watch(plugin, run, key, thread, progress)
        if cancelled:
            progress.stop.set()
            await asyncio.wait([thread], timeout=30)
            clear_incoming(settings, download_id)
            await _finish(plugin, key, "cancelled", None)
            return
        info = await thread
        if progress.budget_bytes and (progress.too_big or not _produced(info)):
            # yt-dlp skips, without an error, a file larger than max_filesize.
            left = progress.budget_bytes / 2**20
            progress.too_big = f"it would take more than the {left:.1f} MB left of your storage"
            raise Refused(progress.too_big)
        await store.change(plugin, key, percent=99.9, heartbeat_at=store.now())
        folder, files, size = await asyncio.to_thread(place, info, work, settings, row)
    except asyncio.CancelledError:
        # Aborted (cancelled by its user) or the worker is stopping: stop yt-dlp, leave nothing.
        progress.stop.set()
        await asyncio.wait([thread], timeout=30)
        clear_incoming(settings, download_id)
        current = await store.get(plugin, key)
        if current is not None and current["status"] == "downloading":
            await store.change(
                plugin, key, when=("downloading",), status="queued",
                reason="The worker stopped during the download; it resumes when a worker is back.",
            )  # fmt: skip
        raise
    except Exception as exc:
        progress.stop.set()
        clear_incoming(settings, download_id)
        if progress.too_big:
            await _finish(plugin, key, "failed", f"Refused: {progress.too_big}.")
            return
        reason = _describe(exc)
        from yt_dlp.utils import DownloadError  # loaded by the download's thread

        if isinstance(exc, DownloadError) and "larger than max-filesize" in reason.lower():
            await _finish(
                plugin, key, "failed", "Refused: it is larger than the storage you have left."
            )
            return
        if run.last_attempt:
            await _finish(plugin, key, "failed", f"Failed after {run.attempt} attempt(s): {reason}")
            return
        await store.change(
            plugin, key, when=("downloading",), status="queued",
            reason=f"Attempt {run.attempt} failed ({reason}); trying again.",
        )  # fmt: skip
        await store.announce(plugin, await store.get(plugin, key) or row)
        raise
    clear_incoming(settings, download_id)
    await store.change(
        plugin,
        key,
        status="completed",
        percent=100.0,
        item=len(files),
        items=len(files),
        folder=str(folder),
        files=files,
        size_kib=(size + 1023) // 1024,
        title=(row["title"] or info.get("title") or "")[:500],
        finished_at=store.now(),
        reason=None,
    )
    done = await store.get(plugin, key)
    if done is not None:
        await store.announce(plugin, done)
    # Once per completion: the Plex plugin scans just this folder's library section.
    try:
        await plugin.call_hook("refresh_library", path=str(folder))
    except Exception:
        plugin.log.exception("asking the media server to scan %s failed", folder)
    collection = collection_of(folder, settings, row)
    if collection:
        collect_in_background(plugin, collection, files)
    await store.dispatch(plugin, row["user_id"])


def collect_in_background(plugin: PluginContext, title: str, files: list[str]) -> None:
    """Have the media servers gather ``files`` in the collection ``title``, beside the job
    (they may take minutes to add the files first); given up if the plugin is deactivated."""
    # A media server's failure is logged once by the plugin registry; anything else, by spawn.
    plugin.spawn(
        plugin.call_hook("collect_media", title=title, paths=files),
        name=f"collecting {title}",
    )


async def _watch(
    plugin: PluginContext,
    run: JobRun,
    key: uuid.UUID,
    thread: asyncio.Future[Any],
    progress: Progress,
) -> bool:
    """Publish progress while yt-dlp works; heartbeats to the row and the queue. True when the
    user cancelled meanwhile."""
    last_sent: dict[str, Any] = {}
    last_row = last_beat = 0.0
    while not thread.done():
        await asyncio.wait([thread], timeout=1 / EVENTS_PER_SECOND)
        snapshot = progress.snapshot()
        if snapshot != last_sent:
            last_sent = snapshot
            await plugin.publish(
                store.TOPIC, "progress", {"id": str(key), "status": "downloading", **snapshot}
            )
        clock = time.monotonic()
        if clock - last_row >= ROW_EVERY:
            last_row = clock
            still = await store.change(
                plugin,
                key,
                when=("downloading",),
                percent=snapshot["percent"],
                item=snapshot["item"],
                items=snapshot["items"],
                heartbeat_at=store.now(),
            )
            if not still:
                return True
        if clock - last_beat >= HEARTBEAT_EVERY:
            last_beat = clock
            await run.heartbeat()
    return False


async def _finish(plugin: PluginContext, key: uuid.UUID, status: str, reason: str | None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": store.now()}
    if status != "cancelled":
        values["reason"] = reason
    await store.change(plugin, key, when=store.ACTIVE, **values)
    row = await store.get(plugin, key)
    if row is not None:
        await store.announce(plugin, row)
        await store.dispatch(plugin, row["user_id"])
