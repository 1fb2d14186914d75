"""Writes emitted events to the outbox after the fact, so no caller ever waits for it.

``emit`` only queues (a call-time query or a report never waits on the store); a task
writes what is queued in batches, retrying a failed write with backoff. What is queued is
written before the app stops; only a crash in the instant between an emit and its write
(milliseconds) can lose an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.events.model import EMAIL_TYPES, Event
from gateway.metrics import Metrics
from gateway.store.outbox import NewEvent, OutboxStore

log = logging.getLogger("gateway.events")

#: Events waiting to be written; beyond this they are dropped, counted and logged.
QUEUE_SIZE = 10_000
BATCH = 200


def as_new(event: Event) -> NewEvent:
    """The outbox's row for an event (emailed too when its type is)."""
    return NewEvent(
        event.id, event.type, event.body(), event.occurred_at.timestamp(), event.type in EMAIL_TYPES
    )


class Emitter:
    """The ``EventSink`` the app gives the pipeline and the call-time query."""

    def __init__(
        self,
        outbox: OutboxStore,
        metrics: Metrics,
        *,
        email: bool = False,
        maxsize: int = QUEUE_SIZE,
        retry_delays: tuple[float, ...] = (0.1, 0.5, 2.0, 5.0),
        prepare: Callable[[list[Event]], Awaitable[None]] | None = None,
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics
        #: Whether emergency and test calls are also emailed (recipients configured).
        self.email = email
        self.retry_delays = retry_delays
        #: Completes a batch of events in place before it is written (one read for all).
        self.prepare = prepare
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None
        self._dropped_logged_at = -1e9
        #: Set by the delivery worker: written events are due now.
        self.on_written: asyncio.Event | None = None

    def emit(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped([event], "queue_full")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-emitter")

    async def idle(self) -> None:
        """Wait until every emitted event is written (or dropped)."""
        await self._queue.join()

    async def aclose(self, grace: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Event]) -> None:
        new: list[NewEvent] | None = None
        for delay in (*self.retry_delays, None):
            try:
                if new is None:
                    if self.prepare is not None:
                        await self.prepare(batch)
                    new = [as_new(e) for e in batch]
                await self.outbox.add_events(new, email=self.email)
            except Exception as exc:
                if delay is None:
                    self._dropped(batch, "store_error", type(exc).__name__)
                    return
                await asyncio.sleep(delay)
                continue
            for event in batch:
                self.metrics.events.labels(type=event.type, result="written").inc()
            if self.on_written is not None:
                self.on_written.set()
            return

    def _dropped(self, batch: list[Event], reason: str, error: str = "") -> None:
        for event in batch:
            self.metrics.events.labels(type=event.type, result="dropped").inc()
        now = time.monotonic()
        if now - self._dropped_logged_at >= 10.0:
            self._dropped_logged_at = now
            log.error(
                "events not written to the outbox",
                extra={
                    "reason": reason,
                    "events": len(batch),
                    "error": error,
                    "ids": [e.id for e in batch[:5]],
                },
            )
