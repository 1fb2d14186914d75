"""The report pipeline: a device's location report, upserted at the carrier with the fewest calls.

One module per job (docs/architecture.md): ``reports`` (what happens to a report),
``repairs`` (uncertain writes and the background tasks that check them), ``reconcile``
(periodic checks against the carrier), ``admin`` (admin edits and number ownership),
``writes`` (the carrier calls), and ``knowledge``, the one owner of what the gateway knows
(binding and location caches, the caller index, bounded carrier reads). ``Pipeline`` wires
them together and is what the app and the routes use.

The domain talks to the carrier and the geocoder only through the protocols in ``ports``,
and imports neither Starlette nor httpx.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.bandwidth.models import Endpoint
from gateway.concurrency import KeyedLocks
from gateway.dlr.callers import CallerIndex
from gateway.dlr.ledger import Ledger, MemoryLedger
from gateway.dlr.pipeline.admin import AdminSync
from gateway.dlr.pipeline.knowledge import Knowledge
from gateway.dlr.pipeline.ports import Carrier, Geocoder, Normalizer, Reconcilable
from gateway.dlr.pipeline.reconcile import Reconciler
from gateway.dlr.pipeline.records import (
    Binding,
    Change,
    GeoFix,
    Outcome,
    Report,
    Superseded,
    Unroutable,
    address_from_json,
    address_json,
    in_address,
)
from gateway.dlr.pipeline.repairs import Background, Repairs
from gateway.dlr.pipeline.reports import Reports
from gateway.dlr.pipeline.writes import CarrierWrites
from gateway.dlr.reads import CarrierReads
from gateway.store.base import HistoryEntry, NumberState, StoredBinding

__all__ = [
    "Binding",
    "Carrier",
    "Change",
    "GeoFix",
    "Geocoder",
    "Normalizer",
    "Outcome",
    "Pipeline",
    "Reconcilable",
    "Report",
    "Superseded",
    "Unroutable",
    "address_from_json",
    "address_json",
    "in_address",
]


class Pipeline:
    """The pipeline's services, built on one ledger and one ``Knowledge``."""

    def __init__(
        self,
        carrier: Carrier,
        geocoder: Geocoder,
        normalize: Normalizer,
        *,
        location_cache_size: int = 200_000,
        binding_cache_size: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
        on_repair: Callable[[str], None] | None = None,
        repair_retry_delays: tuple[float, ...] = (0.5, 2.0, 8.0, 30.0),
        ledger: Ledger | None = None,
        lease_seconds_per_device: float = 8.0,
        callers: CallerIndex | None = None,
        conflict_margin_meters: float = 500.0,
        on_conflict: Callable[[], None] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reads: CarrierReads[Binding | None] | None = None,
    ) -> None:
        #: Each device's desired binding (its newest report that was acknowledged, or whose
        #: write failed with an unknown outcome) and newest report time: the state store,
        #: shared by every replica, or process memory.
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger(binding_cache_size)
        self.known = Knowledge(
            carrier,
            self.ledger,
            location_cache_size=location_cache_size,
            binding_cache_size=binding_cache_size,
            callers=callers,
            reads=reads,
        )
        locks: KeyedLocks[str] = KeyedLocks()
        self.background = Background()
        writes = CarrierWrites(carrier, geocoder, self.ledger, self.known)
        self.repairs = Repairs(
            carrier,
            self.ledger,
            self.known,
            writes,
            locks,
            self.background,
            on_repair=on_repair,
            retry_delays=repair_retry_delays,
        )
        self.reports = Reports(
            geocoder,
            normalize,
            self.ledger,
            self.known,
            writes,
            self.repairs,
            locks,
            conflict_margin_meters=conflict_margin_meters,
            on_conflict=on_conflict,
            wall_clock=wall_clock,
        )
        self.admin = AdminSync(self.ledger, self.known, locks)
        self.reconciler = Reconciler(
            self.repairs, lease_seconds_per_device=lease_seconds_per_device, clock=clock
        )

    @property
    def callers(self) -> CallerIndex | None:
        return self.known.callers

    # -- reports and reads -----------------------------------------------------------------

    async def report(self, report: Report, *, credential: str = "device") -> Outcome:
        return await self.reports.report(report, credential=credential)

    async def current(self, alternate_end_user_id: str) -> Binding | None:
        return await self.known.current(alternate_end_user_id)

    def cached(self, alternate_end_user_id: str) -> Binding | None:
        return self.known.cached(alternate_end_user_id)

    def endpoint_id(self, alternate_end_user_id: str) -> str:
        return self.known.endpoint_id(alternate_end_user_id)

    # -- repair -----------------------------------------------------------------------------

    def abandoned(self, operation: str, record: object, settled: Awaitable[None]) -> None:
        self.repairs.abandoned(operation, record, settled)

    async def repair(self, alternate_end_user_id: str) -> bool:
        return await self.repairs.repair(alternate_end_user_id)

    # -- admin -------------------------------------------------------------------------------

    def forget_location(self, location_id: str) -> None:
        self.known.forget_location(location_id)

    def forget_endpoint(self, endpoint_id: str) -> None:
        self.known.forget_endpoint(endpoint_id)

    async def check_number(self, alternate_end_user_id: str, telephone_number: str) -> None:
        await self.admin.check_number(alternate_end_user_id, telephone_number)

    async def admin_edited(self, endpoint: Endpoint, *, credential: str) -> None:
        await self.admin.admin_edited(endpoint, credential=credential)

    async def admin_deleted(
        self, alternate_end_user_id: str, endpoint: Endpoint, *, credential: str
    ) -> None:
        await self.admin.admin_deleted(alternate_end_user_id, endpoint, credential=credential)

    async def location_deleted(
        self, location_id: str, before: Mapping[str, Any] | None, *, credential: str
    ) -> None:
        await self.admin.location_deleted(location_id, before, credential=credential)

    async def admin_record(
        self,
        key: str,
        kind: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        credential: str,
    ) -> None:
        await self.admin.admin_record(key, kind, before, after, credential)

    async def number(self, telephone_number: str) -> NumberState | None:
        return await self.admin.number(telephone_number)

    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        return await self.admin.set_number(
            telephone_number, owner=owner, shared=shared, credential=credential
        )

    async def holders(self, telephone_number: str, *, limit: int = 100) -> list[StoredBinding]:
        return await self.admin.holders(telephone_number, limit=limit)

    async def devices_with(self, telephone_number: str, *, limit: int) -> list[StoredBinding]:
        return await self.admin.devices_with(telephone_number, limit=limit)

    async def history(
        self, key: str, *, limit: int, before_id: int | None = None
    ) -> list[HistoryEntry]:
        return await self.admin.history(key, limit=limit, before_id=before_id)

    # -- reconciliation and background tasks ------------------------------------------------

    async def reconcile(
        self,
        store: Reconcilable,
        owner: str,
        *,
        batch: int,
        interval: float,
        orphaned_after: float | None = None,
    ) -> int:
        return await self.reconciler.reconcile(
            store, owner, batch=batch, interval=interval, orphaned_after=orphaned_after
        )

    async def reconcile_forever(
        self,
        store: Reconcilable,
        owner: str,
        *,
        batch: int,
        interval: float,
        tick: float = 1.0,
        retention: timedelta | None = None,
        orphaned_after: float | None = None,
    ) -> None:
        await self.reconciler.reconcile_forever(
            store,
            owner,
            batch=batch,
            interval=interval,
            tick=tick,
            retention=retention,
            orphaned_after=orphaned_after,
        )

    async def idle(self) -> None:
        """Wait until every watched write has settled and every repair has run."""
        await self.background.idle()

    async def aclose(self) -> None:
        await self.background.aclose()
