"""Small coordination tools the pipeline, the geocoder and the after-the-fact writers share.

``SingleFlight``: concurrent callers asking for one key share one call. The call runs as
its own task, shielded, so a caller that gives up (its deadline, a client disconnect)
neither cancels the call for the others nor leaves a half-done write behind.

``KeyedLocks``: one ``asyncio.Lock`` per key, kept only while someone holds or waits for it,
so the table stays as small as the number of keys in use.

``BatchQueue``: work written after the fact (query history, events) from a bounded queue, in
batches, by one task: ``put`` never waits, and what cannot be written is counted and logged.

``every``: a reload repeated for as long as the app runs, surviving its failures
(``REFRESH_SECONDS`` apart for what revokes access).

``cancel``: how a background task is stopped at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


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

    async def __aexit__(self, *exc_info: object) -> None:
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


class BatchQueue(ABC, Generic[T]):
    """A bounded queue one task drains in batches of up to ``batch`` into ``write``. ``put``
    never blocks: a full queue drops the item (``queue_full``), a failed ``write`` its batch
    (``store_error``); each drop is counted (``count_dropped``) and logged (``message``, at
    most one line per 10 s, no item's content). Subclasses give the class variables below."""

    #: The task's name.
    name: ClassVar[str]
    #: The log line that says items were dropped.
    message: ClassVar[str]
    #: How long ``aclose`` waits for what is queued to be written.
    grace: ClassVar[float]

    def __init__(
        self, log: logging.Logger, *, maxsize: int, batch: int, linger: float = 0.0
    ) -> None:
        self.batch = batch
        #: Seconds a batch waits for more items after its first (0: write at once).
        self.linger = linger
        self._log = log
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None
        self._logged_at = -1e9

    @abstractmethod
    async def write(self, items: list[T]) -> None:
        """Write one batch; raises when it cannot (the batch is then dropped)."""

    @abstractmethod
    def count_dropped(self, items: Sequence[T], reason: str) -> None:
        """Count items dropped for ``reason`` (``queue_full``, ``store_error``)."""

    def put(self, item: T) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._dropped([item], "queue_full")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def idle(self) -> None:
        """Wait until every item put has been written or dropped."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Write what is queued (for up to ``grace`` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.grace):
                await self._queue.join()
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            if self.linger > 0 and self._queue.qsize() < self.batch - 1:
                await asyncio.sleep(self.linger)
            while len(items) < self.batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self.write(items)
            except Exception as exc:
                self._dropped(items, "store_error", type(exc).__name__)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _dropped(self, items: Sequence[T], reason: str, error: str = "") -> None:
        self.count_dropped(items, reason)
        now = time.monotonic()
        if now - self._logged_at >= 10.0:
            self._logged_at = now
            self._log.warning(
                self.message, extra={"reason": reason, "count": len(items), "error": error}
            )


#: How often a replica reloads what revokes access from the store (token revocations,
#: console sign-outs): the longest another replica may still accept what was revoked
#: elsewhere (plus one load).
REFRESH_SECONDS = 5.0


async def every(
    interval: float, reload: Callable[[], Awaitable[object]], log: logging.Logger, failed: str
) -> None:
    """``reload()`` every ``interval`` seconds until cancelled; a failure (the store down) is
    logged as ``failed`` and the next turn tries again, what was loaded last still served."""
    while True:
        await asyncio.sleep(interval)
        try:
            await reload()
        except Exception:
            log.warning(failed, exc_info=True)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task (if there is one) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
