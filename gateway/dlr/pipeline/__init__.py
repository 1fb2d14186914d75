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
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.concurrency import KeyedLocks
from gateway.dlr.binding import Binding, address_from_json, address_json
from gateway.dlr.callers import CallerIndex
from gateway.dlr.ledger import Ledger, MemoryLedger
from gateway.dlr.pipeline import records
from gateway.dlr.pipeline.admin import AdminSync
from gateway.dlr.pipeline.knowledge import Knowledge
from gateway.dlr.pipeline.ports import Carrier, Geocoder, Normalizer
from gateway.dlr.pipeline.reconcile import Reconciler
from gateway.dlr.pipeline.records import *  # noqa: F403 (``records.__all__``, re-exported)
from gateway.dlr.pipeline.repairs import Background, Repairs
from gateway.dlr.pipeline.reports import Reports
from gateway.dlr.pipeline.writes import CarrierWrites
from gateway.dlr.reads import CarrierReads
from gateway.events.model import EventSink
from gateway.network.wiremap import Match, Observation

__all__ = [
    "Binding",
    "Carrier",
    "Geocoder",
    "Normalizer",
    "Pipeline",
    "address_from_json",
    "address_json",
    *records.__all__,
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
        events: EventSink | None = None,
        network: Callable[[Observation], Match | None] | None = None,
        shared_ledger: bool = False,
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
            shared=shared_ledger,
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
            events=events,
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
            events=events,
            network=network,
        )
        self.admin = AdminSync(
            self.ledger, self.known, locks, wall_clock, recheck=self.repairs.maybe_applied
        )
        self.reconciler = Reconciler(self.repairs, lease_seconds_per_device, clock)
        # The facade's methods are its services' own: one signature, written once.
        self.report = self.reports.report
        self.normalize = self.reports.normalize
        self.import_location = writes.import_location
        self.current = self.known.current
        self.cached = self.known.cached
        self.endpoint_id = self.known.endpoint_id
        self.forget_location = self.known.forget_location
        self.forget_endpoint = self.known.forget_endpoint
        self.abandoned = self.repairs.abandoned
        self.repair = self.repairs.repair
        self.check_number = self.admin.check_number
        self.before_edit = self.admin.before_edit
        self.admin_edited = self.admin.admin_edited
        self.admin_deleted = self.admin.admin_deleted
        self.location_deleted = self.admin.location_deleted
        self.admin_record = self.admin.admin_record
        self.number = self.admin.number
        self.set_number = self.admin.set_number
        self.holders = self.admin.holders
        self.devices_with = self.admin.devices_with
        self.bound_to = self.admin.bound_to
        self.stored = self.admin.stored
        self.knows_location = self.admin.knows_location
        self.history = self.admin.history
        self.reconcile = self.reconciler.reconcile
        self.reconcile_forever = self.reconciler.reconcile_forever
        #: Wait until every watched write has settled and every repair has run.
        self.idle = self.background.idle
        self.aclose = self.background.aclose

    @property
    def callers(self) -> CallerIndex | None:
        return self.known.callers

    async def current_caller(
        self, alternate_end_user_id: str, *, read_carrier: bool = True
    ) -> tuple[str | None, str | None]:
        """The device's current caller name and callback number, for a report that left them
        out (a PIDF-LO seldom carries them); ``None`` for what the gateway does not know.
        Without ``read_carrier``, only the cache and the state store are asked."""
        aeui = alternate_end_user_id
        if read_carrier:
            binding = await self.known.current(aeui)
        else:
            binding = self.known.answerable(aeui)
            stored = await self.ledger.get(aeui) if binding is None else None
            if stored is not None and stored.address is not None:
                return stored.caller_name or None, stored.telephone_number or None
        if binding is None:
            return None, None
        return binding.caller_name or None, binding.telephone_number or None
