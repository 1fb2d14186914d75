"""Writes emitted events to the outbox after the fact, so no caller ever waits for it.

``emit`` only queues (a call-time query or a report never waits on the store); a task
writes what is queued in batches, retrying a failed write with backoff. What is queued is
written before the app stops; only a crash in the instant between an emit and its write
(milliseconds) can lose an event. A deferred event's history record (the call-time
query's) is written in its batch's transaction, and retried with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from gateway.concurrency import BatchQueue
from gateway.events.model import EMAIL_TYPES, DeferredEvent, Event
from gateway.metrics import Metrics
from gateway.store.base import HistoryRecord
from gateway.store.outbox import AddressLookup, NewEvent, OutboxStore, Written

log = logging.getLogger("gateway.events")

#: Events waiting to be written; beyond this they are dropped, counted and logged.
QUEUE_SIZE = 10_000
BATCH = 200
#: Seconds a batch waits for more events after its first: at one call every few
#: milliseconds, a transaction per event would cost the gateway more than the query itself.
LINGER = 0.05
#: Seconds a batch's write is retried in all (at the last of ``retry_delays`` once they are
#: spent) before it is dropped: a store's failover, not its first seconds, must pass.
PERSIST = 300.0


def as_new(event: Event) -> NewEvent:
    """The outbox's row for an event (emailed too when its type is)."""
    return NewEvent(
        event.id, event.type, event.body(), event.occurred_at.timestamp(), event.type in EMAIL_TYPES
    )


class Wake(Protocol):
    """What the emitter sets once it wrote deliveries (an ``asyncio.Event``, say)."""

    def set(self) -> None: ...


class Emitter(BatchQueue[Event | DeferredEvent]):
    """The ``EventSink`` the app gives the pipeline and the call-time query."""

    name = "event-emitter"
    message = "events not written to the outbox"
    grace = 5.0

    def __init__(
        self,
        outbox: OutboxStore,
        metrics: Metrics,
        *,
        email: tuple[str, ...] = (),
        maxsize: int = QUEUE_SIZE,
        linger: float = LINGER,
        retry_delays: tuple[float, ...] = (0.1, 0.5, 2.0, 5.0),
        persist: float = PERSIST,
        prepare: Callable[[list[Event], AddressLookup], None] | None = None,
        on_written: Wake | None = None,
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics
        #: The email targets emergency and test calls also go to (``outbox.EMAIL_TARGETS``).
        self.email = email
        self.retry_delays = retry_delays
        self.persist = persist
        #: Completes a batch of events in place before it is written (one read for all, in
        #: the write's transaction).
        self.prepare = prepare
        #: The delivery worker's wake: written events are due now (set only when they got
        #: deliveries: waking the worker costs it a transaction).
        self.on_written = on_written
        super().__init__(log, maxsize=maxsize, batch=BATCH, linger=linger)

    emit = BatchQueue.put

    async def write(self, items: list[Event | DeferredEvent]) -> None:
        """Write a batch, retrying a failed write with backoff; raises when it gives up."""
        # Built once, before the first attempt: a retry writes the same ids.
        batch: list[Event] = []
        records: list[HistoryRecord] = []
        for item in items:
            if isinstance(item, Event):
                batch.append(item)
                continue
            batch.append(item.event())
            record = item.record()
            if record is not None:
                records.append(record)
        written = Written([], 0)
        give_up = asyncio.get_running_loop().time() + self.persist
        delays = iter(self.retry_delays)
        last = self.retry_delays[-1] if self.retry_delays else 1.0
        retried = False
        while True:
            try:
                written = await self.outbox.write_events(
                    partial(self._rows, batch), email=self.email, records=records
                )
                break
            except Exception:
                delay = next(delays, None)
                if delay is None and records:
                    alone = await self._alone(batch, records)
                    if alone is not None:
                        written, retried = alone, True
                        break
                # The store is down (a failover): retried at the last delay, the events
                # being the calls' notifications, until ``persist`` has passed.
                delay = last if delay is None else delay
                if asyncio.get_running_loop().time() + delay > give_up:
                    raise
                retried = True  # a failed attempt may have been written all the same
                await asyncio.sleep(delay)
        # By type, once per batch: ``labels()`` costs more than the count.
        for type, count in Counter(event.type for event in batch).items():
            self.metrics.events.labels(type=type, result="written").inc(count)
        if (written.deliveries or retried) and self.on_written is not None:
            self.on_written.set()

    async def _alone(self, batch: list[Event], records: list[HistoryRecord]) -> Written | None:
        """The events written without their records, which the store refuses every time:
        the events (Kari's Law's notifications) matter more, and whatever refuses the
        records must not take them down; the records are dropped only when they are refused
        once more after the events were taken. ``None``: the events were refused too."""
        rows = partial(self._rows, batch)
        try:
            written = await self.outbox.write_events(rows, email=self.email)
        except Exception:
            return None
        with contextlib.suppress(Exception):
            # The store may have come back between the write with the records and this
            # one: the records again, with the events (written once: their IDs are held).
            await self.outbox.write_events(rows, email=self.email, records=records)
            return written
        self._records_dropped(len(records), "store_error")
        log.error(
            "the store refused the call-time queries' history records; their events were "
            "written alone",
            extra={"count": len(records)},
        )
        return written

    def _rows(self, batch: list[Event], addresses: AddressLookup) -> list[NewEvent]:
        if self.prepare is not None:
            self.prepare(batch, addresses)
        return [as_new(e) for e in batch]

    def count_dropped(self, batch: Sequence[Event | DeferredEvent], reason: str) -> None:
        for type, count in Counter(event.type for event in batch).items():
            self.metrics.events.labels(type=type, result="dropped").inc(count)
        records = sum(1 for e in batch if not isinstance(e, Event) and e.record() is not None)
        self._records_dropped(records, reason)

    def _records_dropped(self, count: int, reason: str) -> None:
        if count:
            self.metrics.emergency_query_records_dropped.labels(reason=reason).inc(count)
