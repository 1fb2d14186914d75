"""Finds devices whose newest report is older than a configured age: ``device_stale``.

One event per staleness: the event's id is derived from the device and the time it was
last heard from, and a mark remembers that time, so a device heard from again and then
quiet again gets another event, and replicas scanning at once emit one between them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.events.emitter import as_new
from gateway.events.model import DEVICE_STALE, Event, derived_event_id, iso
from gateway.store.outbox import OutboxStore

log = logging.getLogger("gateway.events")


class StaleDevices:
    def __init__(
        self,
        outbox: OutboxStore,
        *,
        stale_after: float,
        clock: Callable[[], float] = time.time,
        batch: int = 500,
    ) -> None:
        self.outbox = outbox
        self.stale_after = stale_after
        self.clock = clock
        self.batch = batch

    async def check(self) -> list[Event]:
        """Emit (write to the outbox) an event for each newly stale device; returns them."""
        now = self.clock()
        found = await self.outbox.newly_stale(now - self.stale_after, limit=self.batch)
        emitted = [
            Event(
                derived_event_id(DEVICE_STALE, row["aeui"], str(row["heard_us"])),
                DEVICE_STALE,
                datetime.fromtimestamp(now, UTC),
                {
                    "aeui": row["aeui"],
                    "callbackNumber": row["telephone_number"],
                    "locationId": row["location_id"],
                    "lastHeardAt": iso(datetime.fromtimestamp(row["heard_at"], UTC)),
                    "ageSeconds": round(now - row["heard_at"]),
                    "staleAfterSeconds": self.stale_after,
                },
            )
            for row in found
        ]
        await self.outbox.add_events(as_new(e) for e in emitted)
        await self.outbox.mark_stale([(row["aeui"], row["heard_us"]) for row in found])
        return emitted

    async def run(self, interval: float) -> None:
        while True:
            try:
                while len(await self.check()) >= self.batch:
                    pass  # more than one batch went stale at once
            except Exception as exc:
                log.warning("stale-device check failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(interval)
