"""Handing memory back to the system once a burst of work is over.

CPython returns its own small-object arenas when they empty, but what it frees through
``malloc`` stays in glibc's heaps for later use, and so in the process's resident size. The
first rounds of the pollers (answers parsed, statements compiled, caches filled) free several
megabytes that a quiet portal never asks for again; ``malloc_trim`` gives them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import platform
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _trim() -> Callable[[int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    import ctypes  # only where there is something to call

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def give_back() -> None:
    """Return the free memory of the C heaps to the system (on glibc; elsewhere nothing).

    Within an event loop it runs on the loop's default thread pool, which it does not hold up
    (ctypes lets go of the GIL): walking a large heap takes milliseconds.
    """
    trim = _trim()
    if trim is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        trim(0)
        return
    with contextlib.suppress(RuntimeError):  # the pool is shutting down with the loop
        loop.run_in_executor(None, trim, 0)
    log.debug("free heap memory being returned to the system")
