"""Handing the C heap's free pages back to the system, where the C library can.

Start-up builds and drops a great deal (the ZIP data's transfer from its child process,
the address parser's model, the migrations): CPython returns its own arenas, but glibc's
``malloc`` keeps the pages of freed blocks mapped, and they count in the process's resident
set for good. ``malloc_trim(0)`` returns them; elsewhere (musl, macOS) this does nothing.
Serving frees such blocks too: a per-device map grows by doubling its table and frees the
old one, so ``trim_forever`` hands them back every minute.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

__all__ = ["trim", "trim_forever"]

#: Seconds between two trims while serving.
TRIM_INTERVAL = 60.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def trim() -> bool:
    """Return the C heap's free pages to the system; whether there was a way to."""
    function = _malloc_trim()
    if function is None:
        return False
    function(0)
    return True


async def trim_forever(interval: float = TRIM_INTERVAL) -> None:
    """``trim`` every ``interval`` seconds, in a worker thread (ctypes lets go of the GIL, and
    a large heap takes milliseconds), so that the event loop never waits on it."""
    if _malloc_trim() is None:
        return
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim)
