"""Periodic reconciliation: each device's desired binding checked against the carrier,
leased so that replicas check different devices."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.bandwidth.errors import UpstreamAuthError, UpstreamError
from gateway.bandwidth.upstreams import in_background
from gateway.dlr.binding import Binding
from gateway.dlr.pipeline.repairs import Repairs, refused
from gateway.store.base import StateStore
from gateway.store.errors import StoreUnavailable

log = logging.getLogger("gateway.pipeline")


@dataclass(slots=True)
class Reconciler:
    """Leases devices from the store and repairs each (``Repairs.repair``)."""

    repairs: Repairs
    #: The longest one carrier call may take (its deadline): sizes reconcile leases.
    lease_seconds_per_device: float
    clock: Callable[[], float]

    async def reconcile(
        self,
        store: StateStore,
        owner: str,
        *,
        batch: int,
        interval: float | None,
        orphaned_after: float | None = None,
    ) -> int:
        """One pass over leased devices: first the orphans (unconfirmed ``orphaned_after``
        seconds after their claim), then up to ``batch`` not checked for ``interval`` seconds
        (None: the orphans only); how many were checked."""
        # An orphan's claimer stopped watching its write (the settle timeout passed) or died
        # mid-write, so no one else checks it before its periodic turn. Leases keep replicas
        # on different devices; a refusal of the gateway's credentials ends the pass.
        now = datetime.now(UTC)
        # Long enough for the pass (a read and a write per device), short enough that a
        # replica that dies mid-pass does not hold its devices for long.
        lease = max(5.0, batch * 2 * self.lease_seconds_per_device)
        rows: list[Binding] = []
        if orphaned_after is not None:
            rows = await store.lease(
                owner,
                limit=batch,
                lease_seconds=lease,
                only_unconfirmed=True,
                applied_before=now - timedelta(seconds=orphaned_after),
                # One whose write the carrier refused waits as long again (``checked``
                # below): it is not re-written every tick.
                older_than=now - timedelta(seconds=orphaned_after),
            )
        if interval is not None and len(rows) < batch:
            older = now - timedelta(seconds=interval)
            rows += await store.lease(
                owner,
                limit=batch - len(rows),
                lease_seconds=lease,
                older_than=older,
                # A binding claimed a moment ago and not yet confirmed is being written by its
                # report right now (a new device's is never checked): reading the carrier in
                # the middle of that write costs a call and proves nothing. If it stays
                # unconfirmed, it is an orphan above.
                skip_unconfirmed_since=(
                    None if orphaned_after is None else now - timedelta(seconds=orphaned_after)
                ),
            )
        for index, row in enumerate(rows):
            try:
                await self.repairs.repair(row.aeui)
            except (UpstreamError, StoreUnavailable) as exc:
                log.info("reconcile: %s not checked: %s", row.aeui, type(exc).__name__)
                if isinstance(exc, UpstreamAuthError):
                    # The gateway's credentials are refused, as they would be for the rest:
                    # the pass ends, and its devices wait unchecked for the next (one refused
                    # call a pass, not one each; none put off for an interval).
                    for left in rows[index:]:
                        await store.release(left.aeui, owner)
                    return index
                if refused(exc):
                    # Its next turn is a while away (an orphan's ``orphaned_after``, anyone
                    # else's ``interval``), not the next tick, where the same write would be
                    # refused again. A carrier that is only unreachable is retried.
                    await store.checked(row.aeui, owner, None)
                else:
                    await store.release(row.aeui, owner)
                continue
            await store.checked(row.aeui, owner, True, version=row.version)
        return len(rows)

    async def reconcile_forever(
        self,
        store: StateStore,
        owner: str,
        *,
        batch: int,
        interval: float | None,
        tick: float = 1.0,
        retention: timedelta | None = None,
        orphaned_after: float | None = None,
    ) -> None:
        """Reconcile ``batch`` devices per ``tick`` for as long as the app runs (background
        work: ``in_background``)."""
        in_background()
        purged_at = -math.inf
        while True:
            # A tick first: the replica that starts this is up (ready) before its first pass.
            await asyncio.sleep(tick)
            try:
                await self.reconcile(
                    store, owner, batch=batch, interval=interval, orphaned_after=orphaned_after
                )
                # Orders left open that no device's check settles (a deleted device's).
                await self.repairs.carrier.settle_orders(batch)
                if retention is not None and self.clock() - purged_at > 3600:
                    purged_at = self.clock()
                    await store.purge_history(datetime.now(UTC) - retention)
            except StoreUnavailable as exc:
                log.warning("reconcile: the state store is unavailable: %s", exc)
            except Exception:
                # One bad pass must not end reconciling (orphaned writes' repair with it)
                # for the life of the replica: its leases expire, the next pass goes on.
                log.exception("reconcile: the pass failed")
