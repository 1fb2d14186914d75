"""Group commit: concurrent calls coalesced into one batched statement.

The first caller starts a flush; everyone who arrives while a batch is in flight waits for
the next one, so under load each round trip carries every call that queued during the
previous one, and an idle store adds no delay at all. Under load (the previous batch carried
more than one call) a flush may also linger for more, as long as calls keep arriving: it
yields to the event loop until ``QUIET_TURNS`` turns bring no new call, or ``linger`` has
passed. Fewer, larger statements, and no idle wait: once everyone who could join has
joined, the flush goes (a fixed sleep left the process idle when every request in flight
was already queued). A key appears at most once per batch:
a second call for the same key waits for the next batch, so calls for one key keep their
order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.store.errors import StoreUnavailable

#: Event-loop turns without a new call after which a lingering flush stops waiting: a request
#: on its way to the store (socket read, HTTP parsing, the handler's own awaits) reaches it
#: within a few turns, so after this many quiet ones nothing more is coming soon. One turn
#: cut batches short over the network (more statements, more CPU per unchanged report);
#: 4 gave the best throughput, 8 and 16 slightly less (docs/benchmarks.md, "Optimizations").
QUIET_TURNS = 4

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
        concurrency: int = 1,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        #: The most seconds a flush waits for more calls before it starts (0: none beyond
        #: this moment), only under load: when the previous batch carried more than one
        #: call, and only while calls keep arriving. An idle store adds no delay.
        self._linger = linger
        #: What ``linger`` is measured on (``None``: the event loop's clock).
        self._clock = clock
        self._last_batch = 0
        #: Batches in flight at once (each on its own connection): while one waits for its
        #: commit, the next is already on its way. One key is never in two at once.
        self._concurrency = max(1, concurrency)
        self._queue: list[_Call[K, V, R]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._running = 0  # workers not yet returned (the set may still hold finished ones)
        self._gathering = 0  # workers not flushing: they will take what is queued
        self._in_flight: set[K] = set()
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
        if self._gathering == 0 and self._running < self._concurrency:
            self._running += 1
            self._gathering += 1
            task = asyncio.create_task(self._worker(), name="store-group-commit")
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        return await future

    async def close(self) -> None:
        """Finish what is queued, then refuse new calls."""
        self._closed = True
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def _gather_more(self) -> None:
        """Yield to the loop while calls keep arriving, up to ``linger`` (see the module)."""
        clock = self._clock or asyncio.get_running_loop().time
        deadline = clock() + self._linger
        quiet = 0
        while len(self._queue) < self._max_batch and clock() < deadline:
            before = len(self._queue)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._queue) == before else 0
            if quiet >= QUIET_TURNS:
                return

    def _take(self) -> list[_Call[K, V, R]]:
        batch: list[_Call[K, V, R]] = []
        later: list[_Call[K, V, R]] = []
        keys: set[K] = set()
        for call in self._queue:
            if call.future.done():  # its caller was cancelled
                continue
            if call.key in keys or call.key in self._in_flight or len(batch) >= self._max_batch:
                later.append(call)
            else:
                keys.add(call.key)
                batch.append(call)
        self._queue = later
        self._in_flight |= keys
        return batch

    async def _worker(self) -> None:
        gathering = True
        try:
            await asyncio.sleep(0)  # let the callers of this same moment join the first batch
            while self._queue:
                if self._linger > 0 and self._last_batch > 1 and len(self._queue) < self._max_batch:
                    await self._gather_more()
                batch = self._take()
                if not batch:
                    if self._queue and self._in_flight:
                        return  # only keys another batch holds: its worker takes them next
                    continue
                self._gathering -= 1
                gathering = False
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
                finally:
                    self._in_flight.difference_update(call.key for call in batch)
                self._gathering += 1
                gathering = True
        finally:
            self._running -= 1
            if gathering:
                self._gathering -= 1


def _copy(exc: Exception) -> Exception:
    """One exception per waiting caller, so their tracebacks do not pile onto one object."""
    if isinstance(exc, StoreUnavailable):
        copy = StoreUnavailable(*exc.args)
        copy.__cause__ = exc.__cause__ or exc
        return copy
    return exc
