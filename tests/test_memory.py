"""gateway.memory.trim: returns the C heap's free pages where glibc can, a no-op elsewhere;
``trim_forever`` does it while the server runs."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys

import pytest

from gateway import memory
from gateway.concurrency import cancel


def test_trim_runs_and_says_whether_it_could() -> None:
    done = memory.trim()
    assert isinstance(done, bool)
    if sys.platform.startswith("linux") and memory._malloc_trim() is not None:
        assert done
    assert memory.trim() is done  # idempotent: nothing breaks on a second call


def test_trim_without_glibc_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert memory.trim() is False
    finally:
        memory._malloc_trim.cache_clear()


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(memory._malloc_trim() is None, reason="glibc's malloc_trim only")
def test_trim_forever_hands_freed_blocks_back_while_the_loop_runs() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 1024  # blocks the heap serves, not mmap's
    blocks = [libc.malloc(size) for _ in range(400)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    # Every other block freed: 12.5 MiB that stay in the heap, between blocks still held
    # (a freed block at the heap's top would go back at once, trim or not).
    freed, held = blocks[::2], blocks[1::2]
    for block in freed:
        libc.free(block)
    before = _rss_kib()

    async def tick() -> None:
        task = asyncio.get_running_loop().create_task(memory.trim_forever(0.01))
        await asyncio.sleep(0.3)
        await cancel(task)

    try:
        asyncio.run(tick())
        assert before - _rss_kib() > 8 * 1024  # KiB: most of the 12.5 MiB was handed back
    finally:
        for block in held:
            libc.free(block)
