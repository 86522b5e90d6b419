"""Collections of files another plugin put in place (a YouTube playlist, say).

Plex adds new files in its own time after it was asked to scan their folder (and the metadata
agents may take a while longer), so the items are waited for: the library's newest items are
read again and again, less and less often, until every file is there or the wait is over. Then
the items go into the collection of that title in their library, made when there is none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from medianest import PluginContext

from . import pollers
from .client import EPISODE, MOVIE, TRACK, Plex, Section

# How long Plex is given to add the files, and how often it is asked meanwhile.
WAIT_SECONDS = 300.0
FIRST_DELAY = 0.5
LONGEST_DELAY = 15.0
# Which items of each kind of library have files, by Plex's type number.
LEAF_TYPES = {"movie": MOVIE, "show": EPISODE, "artist": TRACK}
# How many of the newest items are read, at least, when looking for the new files.
NEWEST_AT_LEAST = 100


class NotAdded(Exception):
    """Plex added none of the files in the time it was given."""


def _norm(path: str) -> str:
    return path.replace("\\", "/").rstrip("/")


def holding(sections: Sequence[Section], paths: Sequence[str]) -> Section | None:
    """The library that holds the first file most closely (its longest folder)."""
    closeness = {s.key: s.holds(paths[0]) for s in sections}
    best = max(closeness.values(), default=0)
    return next((s for s in sections if best and closeness[s.key] == best), None)


async def wait_for_items(
    plex: Plex, section: Section, kind: int, paths: Sequence[str]
) -> dict[str, str]:
    """The rating key of each file Plex has added, by path, once all are there or the wait
    is over."""
    wanted = {_norm(p): p for p in paths}
    found: dict[str, str] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    delay = FIRST_DELAY
    while True:
        listed = await plex.newest(section.key, kind, max(NEWEST_AT_LEAST, 4 * len(wanted)))
        for item in listed:
            for file in item.files:
                if _norm(file) in wanted:
                    found[wanted[_norm(file)]] = item.rating_key
        if len(found) == len(wanted) or time.monotonic() + delay > deadline:
            return found
        await asyncio.sleep(delay)
        delay = min(delay * 2, LONGEST_DELAY)


async def collect(
    plugin: PluginContext, plex: Plex, title: str, paths: Sequence[str]
) -> str | None:
    """Put the files at ``paths`` in the collection ``title``; its name, or ``None`` when no
    library holds them."""
    sections = await plex.sections(ttl=pollers.SECTIONS_TTL)
    section = holding(sections, paths)
    kind = LEAF_TYPES.get(section.type) if section is not None else None
    if section is None or kind is None:
        return None
    held = [p for p in paths if section.holds(p)]
    found = await wait_for_items(plex, section, kind, held)
    if not found:
        raise NotAdded(
            f"Plex added none of the {len(held)} files for the collection {title!r} to "
            f"{section.title} within {WAIT_SECONDS:.0f} s; no collection was made."
        )
    if len(found) < len(held):
        plugin.log.warning(
            "Plex had not added %d of the %d files for the collection %r after %.0f s; "
            "the collection holds the others",
            len(held) - len(found),
            len(held),
            title,
            WAIT_SECONDS,
        )
    keys = list(dict.fromkeys(found[p] for p in held if p in found))
    uri = Plex.items_uri((await plex.identity()).machine_id, keys)
    wanted = title.strip().casefold()
    existing = next(
        (
            c
            for c in await plex.collections(section.key)
            if c.type == "collection" and c.title.strip().casefold() == wanted
        ),
        None,
    )
    if existing is not None:
        await plex.add_to_collection(existing.rating_key, uri)
        plugin.log.info(
            "added %d items to the Plex collection %s in %s",
            len(keys),
            existing.title,
            section.title,
        )
        return existing.title
    made = await plex.create_collection(section.key, title, kind, uri)
    plugin.log.info(
        "made the Plex collection %s in %s with %d items", title, section.title, len(keys)
    )
    return made.title if made is not None and made.title else title
