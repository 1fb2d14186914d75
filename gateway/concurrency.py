"""Two small coordination tools the pipeline and the geocoder share.

``SingleFlight``: concurrent callers asking for one key share one call. The call runs as
its own task, shielded, so a caller that gives up (its deadline, a client disconnect)
neither cancels the call for the others nor leaves a half-done write behind.

``KeyedLocks``: one ``asyncio.Lock`` per key, kept only while someone holds or waits for it,
so the table stays as small as the number of keys in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from types import TracebackType
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """The result of ``call()``, or of the call already running for ``key``."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(_run(call))
            self._inflight[key] = task
            task.add_done_callback(partial(self._landed, key))
        return await asyncio.shield(task)

    def _landed(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved, even when every waiter gave up


async def _run(call: Callable[[], Awaitable[V]]) -> V:
    return await call()


class KeyedLocks(Generic[K]):
    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    def hold(self, key: K) -> _Hold[K]:
        """``async with locks.hold(key):`` one holder per key at a time, in arrival order."""
        return _Hold(self, key)


class _Hold(Generic[K]):
    """``KeyedLocks.hold`` as a plain object: it runs once per report, and a generator-based
    context manager costs several times more to enter and leave."""

    __slots__ = ("_key", "_lock", "_owner")

    def __init__(self, owner: KeyedLocks[K], key: K) -> None:
        self._owner = owner
        self._key = key
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        locks = self._owner._locks
        lock, users = locks.get(self._key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        locks[self._key] = (lock, users + 1)
        self._lock = lock
        try:
            await lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._lock is not None
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        locks = self._owner._locks
        lock, users = locks[self._key]
        if users <= 1:
            del locks[self._key]
        else:
            locks[self._key] = (lock, users - 1)
