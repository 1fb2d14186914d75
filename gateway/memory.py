"""Handing the C heap's free pages back to the system, where the C library can.

Start-up builds and drops a great deal (the ZIP data's transfer from its child process,
the address parser's model, the migrations): CPython returns its own arenas, but glibc's
``malloc`` keeps the pages of freed blocks mapped, and they count in the process's resident
set for good. ``malloc_trim(0)`` returns them; elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

__all__ = ["trim"]


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
