"""Group commit: concurrent calls coalesced into one batched statement.

The first caller starts a flush; everyone who arrives while a batch is in flight waits for
the next one, so under load each round trip carries every call that queued during the
previous one, and an idle store adds no delay at all. Under load (the previous batch carried
more than one call) a flush may also linger a moment for more (``linger``): fewer, larger
statements, each call waiting that much longer. A key appears at most once per batch:
a second call for the same key waits for the next batch, so calls for one key keep their
order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.store.errors import StoreUnavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


@dataclass(slots=True)
class _Call(Generic[K, V, R]):
    key: K
    value: V
    future: asyncio.Future[R]


class GroupCommit(Generic[K, V, R]):
    def __init__(
        self,
        flush: Callable[[Sequence[tuple[K, V]]], Awaitable[Mapping[K, R]]],
        *,
        max_batch: int = 500,
        linger: float = 0.0,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        #: Seconds a flush waits for more calls before it starts (0: none beyond this moment),
        #: only under load: when the previous batch carried more than one call. An idle
        #: store adds no delay.
        self._linger = linger
        self._last_batch = 0
        self._queue: list[_Call[K, V, R]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Calls submitted and batches flushed: ``calls / batches`` is the coalescing factor.
        self.calls = 0
        self.batches = 0

    async def submit(self, key: K, value: V) -> R:
        if self._closed:
            raise StoreUnavailable("the state store is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(key, value, future))
        self.calls += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="store-group-commit")
        return await future

    async def close(self) -> None:
        """Finish what is queued, then refuse new calls."""
        self._closed = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def _take(self) -> list[_Call[K, V, R]]:
        batch: list[_Call[K, V, R]] = []
        later: list[_Call[K, V, R]] = []
        keys: set[K] = set()
        for call in self._queue:
            if call.future.done():  # its caller was cancelled
                continue
            if call.key in keys or len(batch) >= self._max_batch:
                later.append(call)
            else:
                keys.add(call.key)
                batch.append(call)
        self._queue = later
        return batch

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the callers of this same moment join the first batch
        while self._queue:
            if self._linger > 0 and self._last_batch > 1 and len(self._queue) < self._max_batch:
                await asyncio.sleep(self._linger)
            batch = self._take()
            if not batch:
                continue
            self.batches += 1
            self._last_batch = len(batch)
            try:
                results = await self._flush([(call.key, call.value) for call in batch])
            except asyncio.CancelledError:
                for call in batch + self._queue:
                    if not call.future.done():
                        call.future.set_exception(StoreUnavailable("the state store is closed"))
                self._queue.clear()
                raise
            except Exception as exc:
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(_copy(exc))
            else:
                for call in batch:
                    if not call.future.done():
                        call.future.set_result(results[call.key])


def _copy(exc: Exception) -> Exception:
    """One exception per waiting caller, so their tracebacks do not pile onto one object."""
    if isinstance(exc, StoreUnavailable):
        copy = StoreUnavailable(*exc.args)
        copy.__cause__ = exc.__cause__ or exc
        return copy
    return exc
