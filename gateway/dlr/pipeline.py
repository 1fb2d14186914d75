"""The report pipeline: a device's location report, upserted at the carrier with the fewest calls.

For a report from device ``a`` at address ``A`` (DESIGN.md, "The report pipeline"):

1. normalize and validate ``A`` (a GPS-only report is reverse-geocoded first, and refused
   when that gives no street address);
2. derive the location ID from the canonical address and the endpoint ID from ``a``;
3. if ``a`` is already bound to that location with the same caller name and callback
   number, stop: **zero** upstream calls;
4. otherwise geocode (cached), create the location unless it is known to exist (one shared
   call for concurrent reports of one new address; "already exists" is success), and update
   the endpoint, creating it when the update finds none.

Reports for one device are applied one at a time; one older than the newest applied is
superseded. What is known (locations that exist, each device's binding and newest report
time) lives in bounded caches: after a restart or an eviction the first report re-learns
with extra calls but stays correct. A failed write forgets the device's binding, so the
next report writes again rather than trusting a cache the carrier may contradict.

This module is the domain: it talks to the carrier and the geocoder only through the small
protocols below, and imports neither Starlette nor httpx.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cachetools import LRUCache

from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.bandwidth.models import (
    Address,
    Endpoint,
    EndpointListResponse,
    Location,
    wire_name,
)
from gateway.concurrency import KeyedLocks, SingleFlight
from gateway.dlr.address import FieldError, Normalized
from gateway.dlr.callers import CallerIndex
from gateway.dlr.coordinates import distance_meters, uncertainty_meters
from gateway.dlr.ids import endpoint_id_for, location_id_for
from gateway.dlr.ledger import Ledger, MemoryLedger
from gateway.dlr.reads import CarrierReads
from gateway.geocoding.results import GeocodeResult, GeocodingUnavailable, Precision
from gateway.lru import Lru
from gateway.network.wiremap import Match, Observation
from gateway.store.base import (
    Claim,
    HistoryKind,
    HistoryRecord,
    NumberOwned,
    NumberState,
    StoredBinding,
    location_key,
)
from gateway.store.errors import StoreUnavailable

log = logging.getLogger("gateway.pipeline")


class Carrier(Protocol):
    """The carrier operations the pipeline uses (``BandwidthClient`` is one)."""

    async def create_location(self, location: Location) -> Location: ...
    async def get_location(self, location_id: str) -> Location: ...
    async def get_endpoint(self, endpoint_id: str) -> Endpoint: ...
    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint: ...
    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint: ...
    async def list_endpoints(self) -> EndpointListResponse: ...


class Reconcilable(Protocol):
    """What periodic reconciliation needs of the state store."""

    async def lease(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        older_than: datetime | None = None,
        only_unconfirmed: bool = False,
        applied_before: datetime | None = None,
        skip_unconfirmed_since: datetime | None = None,
    ) -> list[StoredBinding]: ...

    async def release(self, aeui: str, owner: str) -> bool: ...

    async def checked(
        self, aeui: str, owner: str, confirmed: bool, *, version: int | None = None
    ) -> bool: ...

    async def purge_history(self, older_than: datetime) -> int: ...


class Geocoder(Protocol):
    """Forward and reverse geocoding (``gateway.geocoding.Geocoding`` is one)."""

    async def geocode(self, address: Address) -> GeocodeResult | None: ...
    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None: ...


Normalizer = Callable[[Address | Mapping[str, object] | str], Normalized]


class Change(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class GeoFix:
    latitude: float
    longitude: float
    accuracy_meters: float | None = None


@dataclass(frozen=True, slots=True)
class Report:
    alternate_end_user_id: str
    caller_name: str
    telephone_number: str
    observed_at: datetime
    address: Address | Mapping[str, object] | str | None = None
    geo: GeoFix | None = None
    #: The device's token attested ``telephone_number`` (its ``phone_number`` claim): the
    #: device may use it whoever owns it.
    number_attested: bool = False
    #: Where the device is attached (``gateway.network``): the wiremap's location beats
    #: ``address`` and ``geo``.
    network: Observation | None = None

    def seen_at(self, observed_at: datetime) -> Report:
        """This report at another time: ``dataclasses.replace`` without its introspection
        (half the cost, on every unchanged report). Every field is passed on (a test holds
        this to ``replace`` for each field)."""
        return Report(
            alternate_end_user_id=self.alternate_end_user_id,
            caller_name=self.caller_name,
            telephone_number=self.telephone_number,
            observed_at=observed_at,
            address=self.address,
            geo=self.geo,
            number_attested=self.number_attested,
            network=self.network,
        )


@dataclass(frozen=True, slots=True)
class Binding:
    """What the carrier holds for one device, as far as this gateway knows."""

    alternate_end_user_id: str
    endpoint_id: str
    location_id: str
    caller_name: str
    telephone_number: str
    address: Address | None
    status: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    observed_at: datetime | None = None
    #: The ledger's version of this binding (``None``: not from the ledger).
    version: int | None = None
    #: The precision of ``latitude``/``longitude`` (``gateway.dlr.coordinates``): ``gps``
    #: (this device's own fix), ``street``, ``postal`` or ``locality`` (a geocode of its
    #: address). Always the gateway's own, never another device's fix or the carrier's
    #: geocode; ``None`` with no coordinates.
    coordinates_source: str | None = None
    #: The device's GPS accuracy in meters, when the coordinates are its own fix.
    accuracy_meters: float | None = None
    #: When the gateway last heard from the device (its own clock; ``None``: unknown).
    heard_at: datetime | None = None
    #: The device's token attested ``telephone_number``.
    attested: bool = False

    def seen_at(self, observed_at: datetime, heard_at: datetime | None = None) -> Binding:
        """This binding at a newer time (as ``Report.seen_at``), heard at ``heard_at``."""
        return Binding(
            alternate_end_user_id=self.alternate_end_user_id,
            endpoint_id=self.endpoint_id,
            location_id=self.location_id,
            caller_name=self.caller_name,
            telephone_number=self.telephone_number,
            address=self.address,
            status=self.status,
            latitude=self.latitude,
            longitude=self.longitude,
            observed_at=observed_at,
            version=self.version,
            coordinates_source=self.coordinates_source,
            accuracy_meters=self.accuracy_meters,
            heard_at=heard_at or self.heard_at,
            attested=self.attested,
        )

    @property
    def aeui(self) -> str:
        return self.alternate_end_user_id

    def stored(self) -> StoredBinding:
        """As the caller index answers it: confirmed (the carrier holds it), no street address."""
        return dataclasses.replace(
            _to_stored(self, with_address=False), confirmed=True, version=self.version or 0
        )

    def same_as(self, location_id: str, caller_name: str, telephone_number: str) -> bool:
        return (
            self.location_id == location_id
            and self.caller_name == caller_name
            and self.telephone_number == telephone_number
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    binding: Binding
    location: Change
    endpoint: Change
    warnings: tuple[FieldError, ...] = ()
    #: What located the device: ``port``, ``switch``, ``access-point``, ``subnet`` (the
    #: wiremap), ``address`` or ``geo``.
    source: str = "address"

    @property
    def changed(self) -> bool:
        return self.location is not Change.UNCHANGED or self.endpoint is not Change.UNCHANGED


class Unroutable(Exception):
    """The address cannot be routed; nothing was written upstream."""

    def __init__(
        self, message: str, errors: tuple[FieldError, ...], suggestions: tuple[Address, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.suggestions = suggestions


class Superseded(Exception):
    """A newer report for this device has already been applied; nothing was changed."""

    def __init__(self, newest: datetime) -> None:
        super().__init__(f"a report observed at {newest.isoformat()} is already applied")
        self.newest = newest


@dataclass(frozen=True, slots=True)
class _KnownLocation:
    """A location the carrier holds (its status, when this replica created it)."""

    status: str | None


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A report's canonical address, and the reverse geocode it came from (GPS-only)."""

    address: Address
    warnings: tuple[FieldError, ...]
    reversed: GeocodeResult | None = None
    #: ``Outcome.source``; a wiremap entry's carrier location ID, when it was given one.
    source: str = "address"
    location_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Conflict:
    """A GPS fix farther from its address's geocode than the fix's accuracy allows."""

    fix: GeoFix
    geocode: GeocodeResult
    distance: float
    bound: float

    def as_json(self) -> dict[str, Any]:
        return {
            "fix": {
                "latitude": self.fix.latitude,
                "longitude": self.fix.longitude,
                "accuracyMeters": self.fix.accuracy_meters,
            },
            "addressGeocode": {
                "latitude": self.geocode.latitude,
                "longitude": self.geocode.longitude,
                "precision": self.geocode.precision.value,
            },
            "distanceMeters": round(self.distance),
            "allowedMeters": round(self.bound),
        }


@dataclass(frozen=True, slots=True)
class _FixCheck:
    """The address's geocode when one was looked up, and whether the fix contradicts it."""

    looked_up: bool = False
    geocode: GeocodeResult | None = None
    conflict: _Conflict | None = None
    warnings: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class _Place:
    """A device's coordinates (``Binding``'s fields), and the address's street-level
    position for the carrier's location (shared by every device at the address)."""

    latitude: float | None = None
    longitude: float | None = None
    precision: Precision | None = None
    accuracy: float | None = None
    street: tuple[float, float] | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_GEOCODER_DOWN = "the geocoder is unavailable: provisioned without coordinates"
_NOT_DISPATCHABLE = (
    "the GPS fix does not resolve to a street address: send a civic address "
    "(a city or ZIP centroid is not a dispatchable 911 location)"
)


def in_address(error: FieldError) -> FieldError:
    """``error`` named as a field of the report: ``zip`` -> ``address.zip``."""
    if error.field == "address" or error.field.startswith("address."):
        return error
    return FieldError(f"address.{error.field}", error.message)


def _in_geo(error: FieldError) -> FieldError:
    """An error about an address the device did not send: it is about its ``geo`` fix."""
    return FieldError("geo", f"{error.field}: {error.message}")


class Pipeline:
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
        network: Callable[[Observation], Match | None] | None = None,
    ) -> None:
        self.carrier = carrier
        self.geocoder = geocoder
        self.normalize = normalize
        self.clock = clock
        self.on_repair = on_repair
        #: How much farther than its own accuracy a GPS fix may be from its address's
        #: geocode before it counts as contradicting it (``on_conflict`` counts those).
        self.conflict_margin_meters = conflict_margin_meters
        self.on_conflict = on_conflict
        #: The gateway's own time: when it heard from a device (never the device's clock).
        self.wall_clock = wall_clock
        self.repair_retry_delays = repair_retry_delays
        #: The longest one carrier call may take (its deadline): sizes reconcile leases.
        self.lease_seconds_per_device = lease_seconds_per_device
        #: Each device's desired binding (its newest report that was acknowledged, or whose
        #: write failed with an unknown outcome) and newest report time: the state store,
        #: shared by every replica, or process memory.
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger(binding_cache_size)
        #: Devices with a write the carrier has not answered yet (abandoned, still watched).
        self._unsettled: dict[str, int] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._locations: LRUCache[str, _KnownLocation] = LRUCache(location_cache_size)
        #: Bindings the carrier is known to hold, with their ledger version: what lets an
        #: unchanged report cost no upstream call and no database read.
        self._bindings: Lru[str, Binding] = Lru(max(1, binding_cache_size))
        self._foreign_ids: LRUCache[str, str] = LRUCache(max(1024, binding_cache_size // 100))
        self._creating: SingleFlight[str, tuple[_KnownLocation, Change]] = SingleFlight()
        self._devices: KeyedLocks[str] = KeyedLocks()
        #: Callback number -> freshest binding, for the emergency-call query: fed here, at
        #: every claim, confirmation, advance, repair and delete this replica makes.
        self.callers = callers
        #: The bounds on carrier reads made for ``current()``.
        self.reads: CarrierReads[Binding | None] = reads if reads is not None else CarrierReads()
        #: The wiremap's lookup (``gateway.network``), for reports with network observations.
        self.network = network

    def _learn(self, stored: StoredBinding) -> None:
        if self.callers is not None:
            self.callers.learn(stored)

    def _learn_binding(self, binding: Binding) -> None:
        """A binding the carrier is known to hold (a confirmed, cached or advanced one):
        the caller index keeps this same object (no copy per device)."""
        if self.callers is not None:
            self.callers.hold(binding)

    def _forget_caller(self, alternate_end_user_id: str) -> None:
        if self.callers is not None:
            self.callers.forget(alternate_end_user_id)

    # -- reading -------------------------------------------------------------------------

    def endpoint_id(self, alternate_end_user_id: str) -> str:
        """The device's endpoint ID: derived, unless the carrier holds it under another."""
        return self._foreign_ids.get(alternate_end_user_id) or endpoint_id_for(
            alternate_end_user_id
        )

    def cached(self, alternate_end_user_id: str) -> Binding | None:
        return self._bindings.get(alternate_end_user_id)

    async def current(self, alternate_end_user_id: str) -> Binding | None:
        """The device's binding as the gateway knows it: the cache, then the state store (the
        desired binding, as the call-time query answers it). The carrier is read only for a
        device neither holds with an address (never reported here, or edited by an admin),
        and then within ``reads``' bounds: once per device per interval, a few at a time."""
        aeui = alternate_end_user_id
        known = self._bindings.get(aeui)
        if known is not None:
            return known
        stored = await self.ledger.get(aeui)
        if stored is not None and stored.address is not None:
            return _from_stored(stored)
        return await self.reads.read(aeui, lambda: self._carrier_binding(aeui))

    async def _carrier_binding(self, alternate_end_user_id: str) -> Binding | None:
        """What the carrier holds for the device: its endpoint and that endpoint's location."""
        try:
            endpoint = await self.carrier.get_endpoint(self.endpoint_id(alternate_end_user_id))
        except UpstreamNotFound:
            return None
        if endpoint.alternate_end_user_id != alternate_end_user_id or not endpoint.location_id:
            return None
        try:
            location = await self.carrier.get_location(endpoint.location_id)
        except UpstreamNotFound:
            location = Location(location_id=endpoint.location_id)
        held = Binding(
            alternate_end_user_id=alternate_end_user_id,
            endpoint_id=endpoint.endpoint_id or self.endpoint_id(alternate_end_user_id),
            location_id=endpoint.location_id,
            caller_name=endpoint.caller_name or "",
            telephone_number=endpoint.telephone_number or "",
            address=location.address,
            status=location.status,
            observed_at=None,
        )
        return await self._as_reported(held)

    async def _as_reported(self, held: Binding) -> Binding:
        """``held`` (read from the carrier) with what the ledger knows of it: when it was
        observed and the device's own coordinates, if the ledger's binding is this one.
        Otherwise both stay unknown: the carrier's coordinates are its own geocode, of no
        stated precision, and the time of an observation no one recorded is not now."""
        try:
            stored = await self.ledger.get(held.alternate_end_user_id)
        except StoreUnavailable:
            return held
        if stored is None or not held.same_as(
            stored.location_id, stored.caller_name, stored.telephone_number
        ):
            return held
        return dataclasses.replace(
            held,
            observed_at=stored.observed_at,
            latitude=stored.latitude,
            longitude=stored.longitude,
            coordinates_source=stored.coordinates_source,
            accuracy_meters=stored.accuracy_meters,
            heard_at=stored.heard_at,
            attested=stored.attested,
            version=stored.version,
        )

    # -- what admins change behind the pipeline's back ------------------------------------

    def forget_location(self, location_id: str) -> None:
        self._locations.pop(location_id, None)
        for aeui, binding in list(self._bindings.items()):
            if binding.location_id == location_id:
                del self._bindings[aeui]

    def forget_device(self, alternate_end_user_id: str) -> None:
        self._bindings.pop(alternate_end_user_id, None)

    def forget_endpoint(self, endpoint_id: str) -> None:
        for aeui, binding in list(self._bindings.items()):
            if binding.endpoint_id == endpoint_id:
                del self._bindings[aeui]

    # -- the report --------------------------------------------------------------------------

    async def resolve(self, report: Report) -> _Resolved:
        """The report's canonical civic address, or ``Unroutable``.

        Field errors and warnings name the report's field: ``address`` or ``address.<field>``
        for the address sent, ``geo`` for one found by reverse geocoding the device's fix.
        """
        if report.network is not None:
            match = self.network(report.network) if self.network is not None else None
            if match is not None:
                entry = match.entry
                return _Resolved(entry.address, (), None, match.source, entry.location_id)
            if report.address is None and report.geo is None:
                message = f"no wiremap entry matches: tried {report.network.tried()}"
                raise Unroutable(message, (FieldError("network", message),))
        found: GeocodeResult | None = None
        if report.address is not None:
            normalized = self.normalize(report.address)
            where = in_address
        elif report.geo is not None:
            found = await self._reverse(report.geo)
            if found is None or found.address is None:
                raise Unroutable(_NOT_DISPATCHABLE, (FieldError("geo", _NOT_DISPATCHABLE),))
            normalized = self.normalize(found.address)
            where = _in_geo
        else:
            message = "send an address or a GPS fix"
            raise Unroutable(message, (FieldError("address", message),))
        if not normalized.valid or normalized.address is None:
            errors = normalized.errors or (FieldError("address", "cannot be parsed"),)
            raise Unroutable(
                "the address cannot be routed",
                tuple(map(where, errors)),
                normalized.suggestions,
            )
        source = "address" if found is None else "geo"
        return _Resolved(normalized.address, tuple(map(where, normalized.warnings)), found, source)

    async def report(self, report: Report, *, credential: str = "device") -> Outcome:
        resolved = await self.resolve(report)
        aeui = report.alternate_end_user_id
        location_id = resolved.location_id or location_id_for(resolved.address)
        check = await self._check_fix(resolved, report.geo)
        warnings = resolved.warnings + check.warnings
        async with self._devices.hold(aeui):
            outcome = await self._unchanged(report, location_id, warnings)
            if outcome is None:
                outcome = await self._apply(
                    report, resolved, location_id, warnings, credential, check
                )
        if check.conflict is not None:
            await self._record_conflict(report, location_id, check.conflict, credential)
        if resolved.source != outcome.source:
            outcome = dataclasses.replace(outcome, source=resolved.source)
        return outcome

    async def _check_fix(self, resolved: _Resolved, fix: GeoFix | None) -> _FixCheck:
        """Whether a report's GPS fix contradicts its address: farther from the address's
        geocode than the fix's accuracy, the geocode's own uncertainty and the margin allow.

        A fix the address was found from (a GPS-only report) agrees with it by construction;
        without a geocode of the address (unknown to the geocoder, or the geocoder is down)
        there is nothing to compare with, and the fix is taken as it is.
        """
        if fix is None or resolved.reversed is not None:
            return _FixCheck()
        try:
            found = await self.geocoder.geocode(resolved.address)
        except GeocodingUnavailable:
            return _FixCheck(looked_up=True)
        if found is None:
            return _FixCheck(looked_up=True)
        distance = distance_meters(fix.latitude, fix.longitude, found.latitude, found.longitude)
        bound = (
            (fix.accuracy_meters or 0.0)
            + self.conflict_margin_meters
            + uncertainty_meters(found.precision)
        )
        if distance <= bound:
            return _FixCheck(looked_up=True, geocode=found)
        message = (
            f"the GPS fix is {distance / 1000:,.1f} km from the address (more than the "
            f"{bound:,.0f} m its accuracy allows): the address is applied, without the fix"
        )
        return _FixCheck(
            looked_up=True,
            geocode=found,
            conflict=_Conflict(fix, found, distance, bound),
            warnings=(FieldError("geo", message),),
        )

    async def _record_conflict(
        self, report: Report, location_id: str, conflict: _Conflict, credential: str
    ) -> None:
        """A report that was applied (or found unchanged) despite its contradicting fix."""
        if self.on_conflict is not None:
            self.on_conflict()
        await self.ledger.record(
            report.alternate_end_user_id,
            kind=HistoryKind.COORDINATES_CONFLICT,
            credential=credential,
            source="report",
            before=None,
            after={"locationId": location_id, **conflict.as_json()},
            observed_at=report.observed_at,
        )

    async def _place(
        self, resolved: _Resolved, fix: GeoFix | None, check: _FixCheck
    ) -> tuple[_Place, tuple[FieldError, ...]]:
        """The device's coordinates: its own fix unless it contradicts the address, else a
        geocode of its address (of whatever precision, named); and the address's street-level
        position for the carrier's location."""
        notes: tuple[FieldError, ...] = ()
        found: GeocodeResult | None
        if resolved.reversed is not None:
            found = resolved.reversed  # the fix's own street address (``_reverse``)
        elif check.looked_up:
            found = check.geocode
        else:
            try:
                found = await self.geocoder.geocode(resolved.address)
            except GeocodingUnavailable:
                found = None
                notes = (FieldError("address", _GEOCODER_DOWN),)
        street: tuple[float, float] | None = None
        if found is not None and found.precision is Precision.STREET:
            street = (found.latitude, found.longitude)
        if fix is not None and check.conflict is None:
            own = _Place(fix.latitude, fix.longitude, Precision.GPS, fix.accuracy_meters, street)
            return own, ()
        if found is None:
            return _Place(), notes
        return _Place(found.latitude, found.longitude, found.precision, None, street), ()

    async def _geocode(self, address: Address) -> GeocodeResult | None:
        try:
            return await self.geocoder.geocode(address)
        except GeocodingUnavailable:
            return None

    async def _unchanged(
        self, report: Report, location_id: str, warnings: tuple[FieldError, ...]
    ) -> Outcome | None:
        """The outcome of a report that changes nothing, or ``None`` when it does.

        Raises ``Superseded`` for a report older than the device's newest. With a warm cache
        an unchanged report costs one conditional write to the ledger (group-committed) and
        no read; after a restart, one read more. A move of a cached device reads nothing
        either: its claim decides its order (``_apply``). The device's coordinates stay
        those set with its binding (a fix that contradicts the address is still reported).
        """
        aeui = report.alternate_end_user_id
        when = report.observed_at
        same = (location_id, report.caller_name, report.telephone_number)
        if aeui in self._unsettled:
            stored = await self.ledger.get(aeui)
            if stored is not None and when < stored.observed_at:
                raise Superseded(stored.observed_at)
            return None
        cached = self._bindings.get(aeui)
        if cached is not None:
            # The store has held the cached time (it only moves forward): older is superseded.
            if cached.observed_at is not None and when < cached.observed_at:
                raise Superseded(cached.observed_at)
            if not cached.same_as(*same) or cached.attested != report.number_attested:
                return None  # a move: the claim decides, atomically, against every replica
            if await self.ledger.advance(aeui, when, version=cached.version):
                binding = cached.seen_at(when, self.wall_clock())
                self._bindings[aeui] = binding
                self._learn_binding(binding)
                return Outcome(binding, Change.UNCHANGED, Change.UNCHANGED, warnings)
            self._bindings.pop(aeui, None)
        stored = await self.ledger.get(aeui)
        if stored is None:
            return None
        if when < stored.observed_at:
            raise Superseded(stored.observed_at)
        binding = _from_stored(stored)
        if not (stored.confirmed and binding.same_as(*same)):
            return None
        if stored.attested != report.number_attested:
            return None
        if not await self.ledger.advance(aeui, when, version=stored.version):
            # A claim landed in between (another replica), or the number is no longer the
            # device's to use: let the full path decide.
            return None
        binding = binding.seen_at(when, self.wall_clock())
        self._bindings[aeui] = binding
        self._learn_binding(binding)
        return Outcome(binding, Change.UNCHANGED, Change.UNCHANGED, warnings)

    async def _apply(
        self,
        report: Report,
        resolved: _Resolved,
        location_id: str,
        warnings: tuple[FieldError, ...],
        credential: str,
        check: _FixCheck,
    ) -> Outcome:
        aeui = report.alternate_end_user_id
        address = resolved.address
        place, notes = await self._place(resolved, report.geo, check)
        warnings += notes
        known = self._locations.get(location_id)
        location_change = Change.UNCHANGED
        if known is None:
            known, location_change = await self._creating.do(
                location_id,
                lambda: self._ensure_location(location_id, address, place.street),
            )
        endpoint = Endpoint(
            endpoint_id=self.endpoint_id(aeui),
            alternate_end_user_id=aeui,
            caller_name=report.caller_name,
            location_id=location_id,
            telephone_number=report.telephone_number,
        )
        binding = Binding(
            alternate_end_user_id=aeui,
            endpoint_id=endpoint.endpoint_id or "",
            location_id=location_id,
            caller_name=report.caller_name,
            telephone_number=report.telephone_number,
            address=address,
            status=known.status,
            latitude=place.latitude,
            longitude=place.longitude,
            observed_at=report.observed_at,
            coordinates_source=None if place.precision is None else place.precision.value,
            accuracy_meters=place.accuracy,
            attested=report.number_attested,
        )
        self._bindings.pop(aeui, None)  # until the carrier confirms, trust nothing cached
        # The history says what located the device: its report, or a wiremap entry.
        wiremap = resolved.source not in ("address", "geo")
        source = f"wiremap:{resolved.source}" if wiremap else "report"
        # Decide, atomically and for every replica, that this report is the device's newest
        # and that the device may use its number (``NumberOwned`` otherwise).
        claim = await self.ledger.claim(_to_stored(binding, source), credential=credential)
        if not claim.won:
            raise Superseded(claim.current.observed_at)
        self._learn(claim.current)
        version = claim.current.version
        binding = dataclasses.replace(binding, heard_at=claim.current.heard_at)
        previous = claim.previous
        if (
            previous is not None
            and previous.confirmed
            and previous.endpoint_id == binding.endpoint_id
            and binding.same_as(
                previous.location_id, previous.caller_name, previous.telephone_number
            )
        ):
            # The carrier already holds this very endpoint (another replica applied it since
            # this one cached the device's last): no write, as for an unchanged report.
            binding = dataclasses.replace(binding, version=version)
            # Unconfirmed, a newer claim came in between: its report writes what it needs.
            if await self.ledger.confirm(aeui, version):
                self._bindings[aeui] = binding
                self._learn_binding(binding)
            return Outcome(binding, location_change, Change.UNCHANGED, warnings)
        try:
            endpoint_change, endpoint_id = await self._write_endpoint(endpoint, address)
        except UpstreamError as exc:
            if exc.ambiguous:
                self._maybe_applied(aeui)
            else:
                await self._revert(claim, report.observed_at, credential)
            raise
        except asyncio.CancelledError:
            # The report's deadline cut the write short: it may still land.
            self._maybe_applied(aeui)
            raise
        binding = dataclasses.replace(binding, endpoint_id=endpoint_id, version=version)
        record = _taken(HistoryKind.APPLIED, previous, claim.current, credential)
        if await self.ledger.confirm(aeui, version, record=record):
            self._bindings[aeui] = binding
            self._learn_binding(binding)
        else:
            # A newer report won the ledger while this one was being written, perhaps at
            # another replica: this write may have landed after its. Make certain.
            self._maybe_applied(aeui)
        return Outcome(binding, location_change, endpoint_change, warnings)

    async def _revert(self, claim: Claim, observed_at: datetime, credential: str) -> None:
        """The carrier definitively refused the claimed binding: the device keeps its old one
        (nothing is recorded: nothing changed at the carrier)."""
        aeui = claim.current.aeui
        previous = claim.previous
        if previous is None:
            await self.ledger.delete(aeui)
            self._forget_caller(aeui)
            return
        restored = await self.ledger.claim(
            dataclasses.replace(previous, observed_at=observed_at),
            credential=credential,
            check_number=False,  # its own number, held before
        )
        if restored.won:
            self._learn(restored.current)
        if restored.won and previous.confirmed:
            await self.ledger.confirm(aeui, restored.current.version)
            self._learn(dataclasses.replace(restored.current, confirmed=True))

    async def _write_endpoint(
        self, endpoint: Endpoint, address: Address | None
    ) -> tuple[Change, str]:
        """``_upsert_endpoint``; when the carrier refuses it because its location is gone
        (deleted by an admin, lost by the carrier), the location is forgotten everywhere,
        created again and the write retried, once."""
        try:
            return await self._upsert_endpoint(endpoint)
        except UpstreamRejected as exc:
            if isinstance(exc, UpstreamNotFound | UpstreamConflict | UpstreamAuthError):
                raise
            location_id = endpoint.location_id
            if address is None or location_id is None or not await self._location_lost(location_id):
                raise
        street = await self._street_point(address)
        await self._creating.do(
            location_id, lambda: self._ensure_location(location_id, address, street)
        )
        return await self._upsert_endpoint(endpoint)

    async def _location_lost(self, location_id: str) -> bool:
        """Whether the carrier no longer holds ``location_id``; if so, no replica trusts it."""
        try:
            await self.carrier.get_location(location_id)
        except UpstreamNotFound:
            pass
        else:
            return False
        log.warning("the carrier no longer holds location %s: creating it again", location_id)
        self._locations.pop(location_id, None)
        await self.ledger.forget_location(location_id)
        await self.ledger.record(
            location_key(location_id),
            kind=HistoryKind.LOCATION_LOST,
            credential="gateway",
            source="carrier",
            before={"locationId": location_id},
            after=None,
            observed_at=None,
        )
        return True

    async def _street_point(self, address: Address) -> tuple[float, float] | None:
        found = await self._geocode(address)
        if found is None or found.precision is not Precision.STREET:
            return None
        return found.latitude, found.longitude

    # -- ambiguous writes and their repair ----------------------------------------------------

    def _maybe_applied(self, alternate_end_user_id: str) -> None:
        """A write failed, but the carrier may hold it (or hold it later).

        The claimed binding stays the device's desired one and newest report (so an older
        report cannot overwrite it), and a repair check is scheduled: by the time the error
        reached us the carrier has answered or the connection is gone, unless the client is
        still watching an abandoned exchange, whose settling schedules its own check.
        """
        self._spawn(self._repair_later(alternate_end_user_id, 0.0))

    def abandoned(self, operation: str, record: object, settled: Awaitable[None]) -> None:
        """The carrier client's ``on_abandoned`` hook: watch an endpoint write to its end.

        Until it settles the device's cached binding is not trusted (every report writes);
        once the carrier has answered it (or the connection is gone), the device's record
        is re-read and repaired if that late write undid a newer one.
        """
        if not isinstance(record, Endpoint) or not record.alternate_end_user_id:
            return
        aeui = record.alternate_end_user_id
        self._unsettled[aeui] = self._unsettled.get(aeui, 0) + 1
        self._bindings.pop(aeui, None)
        self._spawn(self._after_settled(aeui, settled))

    async def _after_settled(self, aeui: str, settled: Awaitable[None]) -> None:
        try:
            await settled
        finally:
            left = self._unsettled.get(aeui, 1) - 1
            if left > 0:
                self._unsettled[aeui] = left
            else:
                self._unsettled.pop(aeui, None)
        await self._repair_later(aeui, 0.0)

    async def _repair_later(self, aeui: str, delay: float) -> None:
        await asyncio.sleep(delay)
        for attempt, wait in enumerate((*self.repair_retry_delays, None)):
            try:
                await self.repair(aeui)
                return
            except (UpstreamError, StoreUnavailable) as exc:
                if wait is None:
                    log.warning("repair of %s gave up after %d tries: %s", aeui, attempt + 1, exc)
                    self._bindings.pop(aeui, None)  # the next report writes again
                    return
                await asyncio.sleep(wait)

    async def repair(self, alternate_end_user_id: str) -> bool:
        """Make the carrier hold the device's desired binding; ``True`` when it had to write."""
        aeui = alternate_end_user_id
        async with self._devices.hold(aeui):
            stored = await self.ledger.get(aeui)
            if stored is None:
                return False
            desired = _from_stored(stored)
            try:
                held: Endpoint | None = await self.carrier.get_endpoint(desired.endpoint_id)
            except UpstreamNotFound:
                held = None
            if held is not None and desired.same_as(
                held.location_id or "", held.caller_name or "", held.telephone_number or ""
            ):
                # An unconfirmed binding the carrier holds: a write whose answer was lost
                # (a timeout, a replica that died) landed after all. Recorded now.
                taken = None
                if not stored.confirmed:
                    taken = _taken(HistoryKind.APPLIED, None, stored, "gateway")
                confirmed = await self.ledger.confirm(aeui, stored.version, record=taken)
                if confirmed:
                    self._learn(dataclasses.replace(stored, confirmed=True))
                if confirmed and aeui not in self._unsettled:
                    self._bindings[aeui] = desired
                return False
            endpoint = Endpoint(
                endpoint_id=desired.endpoint_id,
                alternate_end_user_id=aeui,
                caller_name=desired.caller_name,
                location_id=desired.location_id,
                telephone_number=desired.telephone_number,
            )
            self._bindings.pop(aeui, None)
            await self._write_endpoint(endpoint, desired.address)
            log.warning(
                "repaired %s: the carrier held location %s, not %s",
                aeui,
                held.location_id if held is not None else None,
                desired.location_id,
            )
            if self.on_repair is not None:
                self.on_repair("regressed" if held is not None else "missing")
            record = HistoryRecord(
                aeui,
                HistoryKind.REPAIRED,
                "gateway",
                stored.source,
                None if held is None else _endpoint_json(held),
                stored.as_json(),
                stored.observed_at,
            )
            if await self.ledger.confirm(aeui, stored.version, record=record):
                self._learn(dataclasses.replace(stored, confirmed=True))
                if aeui not in self._unsettled:
                    self._bindings[aeui] = desired
            else:
                # A newer binding was claimed while this repair wrote (perhaps at another
                # replica), and this write may have landed after it: check again.
                self._maybe_applied(aeui)
            return True

    # -- admin edits -------------------------------------------------------------------------

    async def check_number(self, alternate_end_user_id: str, telephone_number: str) -> None:
        """``NumberOwned`` when another device owns the number alone: an admin's endpoint
        follows the devices' rule, checked before it is written to the carrier."""
        state = await self.ledger.number(telephone_number)
        if state is not None and state.refuses(alternate_end_user_id):
            assert state.owner is not None
            raise NumberOwned(telephone_number, state.owner)

    async def admin_edited(self, endpoint: Endpoint, *, credential: str) -> None:
        """An admin wrote this endpoint at the carrier: make it the device's desired binding,
        recorded in its history.

        It keeps the device's newest report time, so the reconciler does not undo the edit,
        and the device's next (newer) report still applies as usual; and, on the same
        location, the device's address and coordinates. Its number is held as a report's
        is (``NumberOwned`` in a race with another device's claim of it).
        """
        aeui = endpoint.alternate_end_user_id
        if not aeui or not endpoint.location_id or not endpoint.endpoint_id:
            return
        async with self._devices.hold(aeui):
            self._bindings.pop(aeui, None)
            self.reads.forget(aeui)
            previous = await self.ledger.get(aeui)
            edited = StoredBinding(
                aeui=aeui,
                endpoint_id=endpoint.endpoint_id,
                location_id=endpoint.location_id,
                address=None,
                caller_name=endpoint.caller_name or "",
                telephone_number=endpoint.telephone_number or "",
                observed_at=previous.observed_at if previous is not None else _EPOCH,
                source="admin",
            )
            if previous is not None and previous.location_id == edited.location_id:
                edited = dataclasses.replace(
                    edited,
                    address=previous.address,
                    latitude=previous.latitude,
                    longitude=previous.longitude,
                    coordinates_source=previous.coordinates_source,
                    accuracy_meters=previous.accuracy_meters,
                )
            if previous is not None and previous.telephone_number == edited.telephone_number:
                edited = dataclasses.replace(edited, attested=previous.attested)
            claim = await self.ledger.claim(edited, credential=credential)
            if claim.won:
                record = _taken(HistoryKind.ADMIN_EDIT, previous, claim.current, credential)
                await self.ledger.confirm(aeui, claim.current.version, record=record)
                self._learn(dataclasses.replace(claim.current, confirmed=True))

    async def admin_deleted(
        self, alternate_end_user_id: str, endpoint: Endpoint, *, credential: str
    ) -> None:
        """An admin deleted the device's endpoint: forget its binding (nothing to repair),
        release the numbers it owned, and record both."""
        aeui = alternate_end_user_id
        async with self._devices.hold(aeui):
            self._bindings.pop(aeui, None)
            self.reads.forget(aeui)
            row = await self.ledger.delete(aeui)
            self._forget_caller(aeui)
            await self.ledger.record(
                aeui,
                kind=HistoryKind.DELETED,
                credential=credential,
                source="admin",
                before=_endpoint_json(endpoint) if row is None else row.as_json(),
                after=None,
                observed_at=None,
            )
            await self.ledger.release_numbers(aeui, credential=credential)

    async def location_deleted(
        self, location_id: str, before: Mapping[str, Any] | None, *, credential: str
    ) -> None:
        """An admin deleted a location at the carrier: no replica trusts it any longer, so a
        report at its address creates it again; recorded under ``location_key``."""
        self.forget_location(location_id)
        await self.ledger.forget_location(location_id)
        await self.admin_record(
            location_key(location_id), HistoryKind.LOCATION_DELETED, before, None, credential
        )

    async def admin_record(
        self,
        key: str,
        kind: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        credential: str,
    ) -> None:
        """An admin's change that is not a device's binding, in the history under ``key``."""
        await self.ledger.record(
            key,
            kind=kind,
            credential=credential,
            source="admin",
            before=before,
            after=after,
            observed_at=None,
        )

    # -- callback numbers ------------------------------------------------------------------

    async def number(self, telephone_number: str) -> NumberState | None:
        return await self.ledger.number(telephone_number)

    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        """An admin assigns, shares or releases a number (``StateStore.set_number``). This
        replica's caller index stops answering devices that may no longer use it."""
        before, after = await self.ledger.set_number(
            telephone_number, owner=owner, shared=shared, credential=credential
        )
        if after is not None and self.callers is not None:
            self.callers.restrict(after)
        return before, after

    # -- periodic reconciliation ----------------------------------------------------------

    async def reconcile(
        self,
        store: Reconcilable,
        owner: str,
        *,
        batch: int,
        interval: float,
        orphaned_after: float | None = None,
    ) -> int:
        """One pass: check up to ``batch`` devices not checked for ``interval`` seconds.

        First, though, the orphans: bindings still unconfirmed ``orphaned_after`` seconds
        after they were claimed. Whoever claimed one has stopped watching its write (the
        settle timeout passed) or died mid-write (a killed replica), so no one else will
        check it before its periodic turn, which may be an ``interval`` away.

        Rows are leased in the database, so replicas check different devices; a device is
        re-read from the carrier and re-written if it regressed. Answers how many were
        checked.
        """
        now = datetime.now(UTC)
        # Long enough for the pass (a read and a write per device), short enough that a
        # replica that dies mid-pass does not hold its devices for long.
        lease = max(5.0, batch * 2 * self.lease_seconds_per_device)
        rows: list[StoredBinding] = []
        if orphaned_after is not None:
            rows = await store.lease(
                owner,
                limit=batch,
                lease_seconds=lease,
                only_unconfirmed=True,
                applied_before=now - timedelta(seconds=orphaned_after),
            )
        if len(rows) < batch:
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
        for row in rows:
            try:
                await self.repair(row.aeui)
            except (UpstreamError, StoreUnavailable) as exc:
                log.info("reconcile: %s not checked: %s", row.aeui, type(exc).__name__)
                await store.release(row.aeui, owner)
                continue
            await store.checked(row.aeui, owner, True, version=row.version)
        return len(rows)

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
        """Reconcile ``batch`` devices per ``tick`` for as long as the app runs."""
        purged_at = -math.inf
        while True:
            try:
                await self.reconcile(
                    store, owner, batch=batch, interval=interval, orphaned_after=orphaned_after
                )
                if retention is not None and self.clock() - purged_at > 3600:
                    purged_at = self.clock()
                    await store.purge_history(datetime.now(UTC) - retention)
            except StoreUnavailable as exc:
                log.warning("reconcile: the state store is unavailable: %s", exc)
            await asyncio.sleep(tick)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def idle(self) -> None:
        """Wait until every watched write has settled and every repair has run."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _reverse(self, fix: GeoFix) -> GeocodeResult | None:
        if not (math.isfinite(fix.latitude) and math.isfinite(fix.longitude)):
            return None
        try:
            found = await self.geocoder.reverse(fix.latitude, fix.longitude)
        except GeocodingUnavailable:
            message = "the geocoder is unavailable, so a GPS-only report cannot be resolved"
            raise Unroutable(message, (FieldError("geo", message),)) from None
        if found is None or found.precision is not Precision.STREET:
            return None
        return found

    async def _ensure_location(
        self, location_id: str, address: Address, street: tuple[float, float] | None
    ) -> tuple[_KnownLocation, Change]:
        """Make sure the carrier holds the location: known to the ledger, or created now,
        with the address's street-level position when there is one (never a device's fix:
        every device at the address shares the location)."""
        if await self.ledger.locations_known(location_id):
            known = _KnownLocation(None)
            self._locations[location_id] = known
            return known, Change.UNCHANGED
        latitude, longitude = street if street is not None else (None, None)
        location = Location(
            location_id=location_id, address=address, latitude=latitude, longitude=longitude
        )
        change = Change.CREATED
        try:
            held = await self.carrier.create_location(location)
        except UpstreamConflict:
            # It exists already (an admin created it, or a store was lost): its status is
            # what the carrier holds, not what this report would have sent.
            held = await self.carrier.get_location(location_id)
            change = Change.UNCHANGED
        except UpstreamRejected as exc:
            if isinstance(exc, UpstreamNotFound):
                raise
            message = f"the carrier refused the address: {exc.description or exc.message}"
            raise Unroutable(message, (FieldError("address", message),)) from None
        known = _KnownLocation(held.status)
        self._locations[location_id] = known
        await self.ledger.remember_location(
            location_id, address_json(address), known.status, held.latitude, held.longitude
        )
        return known, change

    async def _upsert_endpoint(self, endpoint: Endpoint) -> tuple[Change, str]:
        """Update the endpoint; create it when the carrier has none (one more call).

        Answers what changed and the endpoint's ID at the carrier.
        """
        assert endpoint.endpoint_id is not None
        assert endpoint.alternate_end_user_id is not None
        try:
            await self.carrier.update_endpoint(endpoint.endpoint_id, endpoint)
        except UpstreamNotFound:
            pass
        else:
            return Change.UPDATED, endpoint.endpoint_id
        try:
            await self.carrier.create_endpoint(endpoint)
        except UpstreamConflict:
            # Either a concurrent create won (update it now), or the carrier holds this AEUI
            # under an endpoint ID of someone else's choosing: learn it by listing.
            foreign = await self._find_endpoint(endpoint.alternate_end_user_id)
            if foreign is None:
                raise
            self._foreign_ids[endpoint.alternate_end_user_id] = foreign
            moved = dataclasses.replace(endpoint, endpoint_id=foreign)
            await self.carrier.update_endpoint(foreign, moved)
            return Change.UPDATED, foreign
        return Change.CREATED, endpoint.endpoint_id

    async def _find_endpoint(self, alternate_end_user_id: str) -> str | None:
        listing = await self.carrier.list_endpoints()
        for endpoint in listing.endpoints:
            if endpoint.alternate_end_user_id == alternate_end_user_id:
                return endpoint.endpoint_id
        return None


def deadline_error(seconds: float) -> UpstreamError:
    return UpstreamTimeout(f"the report did not complete within {seconds:g} s")


def address_json(address: Address) -> dict[str, Any]:
    """The address in the seed's camelCase fields, absent ones left out."""
    return {
        wire_name(f.name): getattr(address, f.name)
        for f in dataclasses.fields(address)
        if getattr(address, f.name) is not None
    }


def address_from_json(data: Mapping[str, Any] | None) -> Address | None:
    if not data:
        return None
    names = {wire_name(f.name): f.name for f in dataclasses.fields(Address)}
    return Address(**{names[k]: v for k, v in data.items() if k in names})


def _to_stored(
    binding: Binding, source: str = "report", *, with_address: bool = True
) -> StoredBinding:
    assert binding.observed_at is not None
    address = binding.address if with_address else None
    return StoredBinding(
        aeui=binding.alternate_end_user_id,
        endpoint_id=binding.endpoint_id,
        location_id=binding.location_id,
        address=address_json(address) if address is not None else None,
        caller_name=binding.caller_name,
        telephone_number=binding.telephone_number,
        observed_at=binding.observed_at,
        source=source,
        latitude=binding.latitude,
        longitude=binding.longitude,
        coordinates_source=binding.coordinates_source,
        accuracy_meters=binding.accuracy_meters,
        heard_at=binding.heard_at,
        attested=binding.attested,
    )


def _from_stored(stored: StoredBinding) -> Binding:
    return Binding(
        alternate_end_user_id=stored.aeui,
        endpoint_id=stored.endpoint_id,
        location_id=stored.location_id,
        caller_name=stored.caller_name,
        telephone_number=stored.telephone_number,
        address=address_from_json(stored.address),
        latitude=stored.latitude,
        longitude=stored.longitude,
        observed_at=stored.observed_at,
        version=stored.version,
        coordinates_source=stored.coordinates_source,
        accuracy_meters=stored.accuracy_meters,
        heard_at=stored.heard_at,
        attested=stored.attested,
    )


def _taken(
    kind: str, previous: StoredBinding | None, current: StoredBinding, credential: str
) -> HistoryRecord | None:
    """The history record of a binding the carrier took, unless it already held it."""
    held = previous is not None and previous.confirmed and current.same_binding(previous)
    if kind == HistoryKind.APPLIED and held:
        return None
    return HistoryRecord(
        current.aeui,
        kind,
        credential,
        current.source,
        None if previous is None else previous.as_json(),
        current.as_json(),
        current.observed_at,
    )


def _endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    """What the carrier held for a device, as a history entry shows a binding."""
    return {
        "endpointId": endpoint.endpoint_id,
        "locationId": endpoint.location_id,
        "callerName": endpoint.caller_name,
        "telephoneNumber": endpoint.telephone_number,
    }
