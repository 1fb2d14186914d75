"""What happens to a report: resolved to an address, checked against its fix, found
unchanged (no carrier call) or claimed in the ledger and written to the carrier."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.bandwidth.errors import UpstreamError, UpstreamPending
from gateway.bandwidth.models import Address, Endpoint
from gateway.concurrency import KeyedLocks
from gateway.dlr.binding import Binding, newest
from gateway.dlr.coordinates import distance_meters, uncertainty_meters
from gateway.dlr.errors import FieldError
from gateway.dlr.ids import location_id_for
from gateway.dlr.ledger import Ledger
from gateway.dlr.pipeline.knowledge import Knowledge
from gateway.dlr.pipeline.ports import Geocoder, Normalizer
from gateway.dlr.pipeline.records import (
    Change,
    GeoFix,
    Outcome,
    Progress,
    Report,
    Superseded,
    Unroutable,
    in_address,
    taken,
)
from gateway.dlr.pipeline.repairs import Repairs
from gateway.dlr.pipeline.writes import CarrierWrites
from gateway.events.model import EventSink, location_conflict, provisioning_failed
from gateway.geocoding.results import GeocodeResult, GeocodingUnavailable, Precision
from gateway.network.wiremap import Match, Observation
from gateway.store.base import Claim, DeviceDeleted, HistoryKind, HistoryRecord


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


#: A report without a fix to check (frozen: one for all of them).
_NOTHING_TO_CHECK = _FixCheck()

_GEOCODER_DOWN = "the geocoder is unavailable: provisioned without coordinates"
_NOT_DISPATCHABLE = (
    "the GPS fix does not resolve to a street address: send a civic address "
    "(a city or ZIP centroid is not a dispatchable 911 location)"
)


def _refuse_older(when: datetime, binding: Binding) -> None:
    """``Superseded`` for a report observed at ``when``, older than the device's newest."""
    at = newest(binding)
    if when < at:
        raise Superseded(at)


def _same_place(binding: Binding, fix: GeoFix | None) -> bool:
    """Whether ``binding``'s coordinates stand for a report at its address with ``fix`` (a
    GPS fix that does not contradict the address): they are that very fix. For a report
    without one (or with a contradicting one), they are a geocode of the address (or none),
    never an earlier fix: that fix was where the device was when it was taken, and the
    binding's time becomes this report's, so it would be answered as fixed just now."""
    gps = binding.coordinates_source == Precision.GPS.value
    if fix is None:
        return not gps
    return (
        gps
        and binding.latitude == fix.latitude
        and binding.longitude == fix.longitude
        and binding.accuracy_meters == fix.accuracy_meters
    )


def _in_geo(error: FieldError) -> FieldError:
    """An error about an address the device did not send: it is about its ``geo`` fix."""
    return FieldError("geo", f"{error.field}: {error.message}")


@dataclass(slots=True)
class Reports:
    """The report path, from a parsed ``Report`` to the carrier and the ledger."""

    geocoder: Geocoder
    normalize: Normalizer
    ledger: Ledger
    known: Knowledge
    writes: CarrierWrites
    repairs: Repairs
    locks: KeyedLocks[str]
    #: How much farther than its own accuracy a GPS fix may be from its address's
    #: geocode before it counts as contradicting it (``on_conflict`` counts those).
    conflict_margin_meters: float
    on_conflict: Callable[[], None] | None
    #: The gateway's own time: when it heard from a device (never the device's clock).
    wall_clock: Callable[[], datetime]
    #: Where ``provisioning_failed`` and ``location_conflict`` events go.
    events: EventSink | None = None
    #: The wiremap's lookup (``gateway.network``), for reports with network observations.
    network: Callable[[Observation], Match | None] | None = None

    async def resolve(self, report: Report) -> _Resolved:
        """The report's canonical civic address, or ``Unroutable``.

        Field errors and warnings name the report's field: ``address`` or ``address.<field>``
        for the address sent, ``geo`` for one found by reverse geocoding the device's fix.
        """
        distrusted: tuple[FieldError, ...] = ()
        if report.network is not None:
            match = self.network(report.network) if self.network is not None else None
            if match is not None and match.distrusted is None:
                entry = match.entry
                return _Resolved(entry.address, (), None, match.source, entry.location_id)
            if match is not None:  # a private subnet heard from outside (``egress``)
                distrusted = (FieldError("network", match.distrusted or ""),)
            if report.address is None and report.geo is None:
                message = f"no wiremap entry matches: tried {report.network.tried()}"
                errors = distrusted or (FieldError("network", message),)
                raise Unroutable(errors[0].message, errors)
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
            errors = tuple(
                map(where, normalized.errors or (FieldError("address", "cannot be parsed"),))
            )
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise Unroutable(
                f"{errors[0].field} {errors[0].message}{more}", errors, normalized.suggestions
            )
        source = "address" if found is None else "geo"
        warnings = (*distrusted, *map(where, normalized.warnings))
        return _Resolved(normalized.address, warnings, found, source)

    async def report(
        self,
        report: Report,
        *,
        credential: str = "device",
        first_seen: bool = False,
        progress: Progress | None = None,
    ) -> Outcome:
        """``report`` applied. ``first_seen``: the caller knows the carrier holds no endpoint
        for the device (a bulk import of devices new to the gateway), so when the ledger has
        never held it either, its endpoint is created without the update tried first.
        ``progress`` says how far it got, should the caller's deadline cut it short."""
        resolved, check = await self._located(report)
        aeui = report.alternate_end_user_id
        location_id = resolved.location_id or location_id_for(resolved.address)
        warnings = resolved.warnings + check.warnings
        try:
            async with self.locks.hold(aeui):
                outcome = await self._unchanged(report, location_id, warnings, check)
                if outcome is None:
                    outcome = await self._apply(
                        report,
                        resolved,
                        location_id,
                        warnings,
                        credential,
                        check,
                        first_seen,
                        progress,
                    )
        except UpstreamError as exc:
            # Pending (202) is not failed: the repair follows it, and reports a refusal.
            if self.events is not None and not isinstance(exc, UpstreamPending):
                self.events.emit(
                    provisioning_failed(
                        aeui,
                        report.telephone_number,
                        location_id,
                        exc,
                        outcome_unknown=exc.ambiguous,
                        observed_at=report.observed_at,
                    )
                )
            raise
        if check.conflict is not None:
            await self._record_conflict(report, location_id, check.conflict, credential)
        if resolved.source != outcome.source:
            outcome = dataclasses.replace(outcome, source=resolved.source)
        return outcome

    async def _located(self, report: Report) -> tuple[_Resolved, _FixCheck]:
        """The report's place, and its GPS fix checked against it. A subnet match that the
        device's own fix contradicts is not used (a private address is anyone's network
        behind NAT): the report is located by its address or fix instead, if they locate it
        (as for one heard from outside the trusted egress networks: ``resolve``)."""
        resolved = await self.resolve(report)
        check = await self._check_fix(resolved, report.geo)
        if resolved.source != "subnet" or check.conflict is None:
            return resolved, check
        try:
            instead = await self.resolve(dataclasses.replace(report, network=None))
        except Unroutable:
            return resolved, check  # nothing else locates it: the subnet's place, warned
        message = (
            f"the subnet's place is {check.conflict.distance / 1000:,.1f} km from the GPS fix: "
            "not used (the address may be another network's, behind NAT)"
        )
        instead = dataclasses.replace(
            instead, warnings=(FieldError("network", message), *instead.warnings)
        )
        return instead, await self._check_fix(instead, report.geo)

    async def _check_fix(self, resolved: _Resolved, fix: GeoFix | None) -> _FixCheck:
        """Whether a report's GPS fix contradicts its address: farther from the address's
        geocode than the fix's accuracy, the geocode's own uncertainty and the margin allow.

        A fix the address was found from (a GPS-only report) agrees with it by construction;
        without a geocode of the address (unknown to the geocoder, or the geocoder is down)
        there is nothing to compare with, and the fix is taken as it is.
        """
        if fix is None or resolved.reversed is not None:
            return _NOTHING_TO_CHECK
        try:
            found = await self.geocoder.geocode(resolved.address)
        except GeocodingUnavailable:
            return _FixCheck(looked_up=True)
        if found is None:
            return _FixCheck(looked_up=True)
        distance = distance_meters(fix.latitude, fix.longitude, found.latitude, found.longitude)
        bound = self._allowed(fix, found)
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

    def _allowed(self, fix: GeoFix, found: GeocodeResult) -> float:
        """How far a fix may lie from a geocode of its address and still agree with it."""
        return (
            (fix.accuracy_meters or 0.0)
            + self.conflict_margin_meters
            + uncertainty_meters(found.precision)
        )

    async def _record_conflict(
        self, report: Report, location_id: str, conflict: _Conflict, credential: str
    ) -> None:
        """A report that was applied (or found unchanged) despite its contradicting fix."""
        if self.on_conflict is not None:
            self.on_conflict()
        if self.events is not None:
            self.events.emit(
                location_conflict(
                    report.alternate_end_user_id,
                    location_id,
                    conflict.as_json(),
                    report.observed_at,
                )
            )
        await self.ledger.record(
            HistoryRecord(
                report.alternate_end_user_id,
                kind=HistoryKind.COORDINATES_CONFLICT,
                credential=credential,
                source="report",
                before=None,
                after={"locationId": location_id, **conflict.as_json()},
                observed_at=report.observed_at,
            )
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

    async def _unchanged(
        self,
        report: Report,
        location_id: str,
        warnings: tuple[FieldError, ...],
        check: _FixCheck,
    ) -> Outcome | None:
        """The outcome of a report that changes nothing (one group-committed write, no read
        with a warm cache, one read more after a restart), or ``None`` for a change, a new
        GPS fix among them (``_same_place``; its claim then costs no carrier call);
        ``Superseded`` for a report older than the device's newest or its deletion."""
        aeui = report.alternate_end_user_id
        when = report.observed_at
        same = (location_id, report.caller_name, report.telephone_number)
        fix = report.geo if check.conflict is None else None
        if aeui in self.known.unsettled:
            stored = await self._stored(aeui, when)
            if stored is not None:
                _refuse_older(when, stored)
            return None
        cached = self.known.bindings.get(aeui)
        if cached is not None:
            # The store has held the cached time (it only moves forward): older is superseded.
            if cached.observed_at is not None:
                _refuse_older(when, cached)
            if not cached.same_as(*same) or cached.attested != report.number_attested:
                return None  # a move: the claim decides, atomically, against every replica
            if not _same_place(cached, fix):
                return None
            if await self.ledger.advance(aeui, when, version=cached.version):
                binding = cached.seen_at(when, self.wall_clock())
                self.known.trust(binding)
                return Outcome(binding, Change.UNCHANGED, Change.UNCHANGED, warnings)
            self.known.distrust(aeui)
        stored = await self._stored(aeui, when)
        if stored is None:
            return None
        _refuse_older(when, stored)
        binding = stored
        if not (stored.confirmed and binding.same_as(*same)):
            return None
        if stored.attested != report.number_attested or not _same_place(stored, fix):
            return None
        if not await self.ledger.advance(aeui, when, version=stored.version):
            # A claim landed in between (another replica), or the number is no longer the
            # device's to use: let the full path decide.
            return None
        binding = binding.seen_at(when, self.wall_clock())
        self.known.trust(binding)
        return Outcome(binding, Change.UNCHANGED, Change.UNCHANGED, warnings)

    async def _stored(self, aeui: str, when: datetime) -> Binding | None:
        """The device's row; without one, ``Superseded`` when an admin deleted the device
        after ``when`` (its claim would refuse it: no carrier write first)."""
        stored, deleted_at = await self.ledger.get_or_deleted(aeui)
        if deleted_at is not None and when < deleted_at:
            raise Superseded(deleted_at, deleted=True)
        return stored

    async def _apply(
        self,
        report: Report,
        resolved: _Resolved,
        location_id: str,
        warnings: tuple[FieldError, ...],
        credential: str,
        check: _FixCheck,
        first_seen: bool = False,
        progress: Progress | None = None,
    ) -> Outcome:
        aeui = report.alternate_end_user_id
        address = resolved.address
        place, notes = await self._place(resolved, report.geo, check)
        warnings += notes
        try:
            known, location_change = await self.writes.location(location_id, address, place.street)
        except asyncio.CancelledError:  # the deadline: did it run out at the carrier?
            if progress is not None:
                progress.at_carrier = location_id in self.writes.at_carrier
            raise
        endpoint = Endpoint(
            endpoint_id=self.known.endpoint_id(aeui),
            alternate_end_user_id=aeui,
            caller_name=report.caller_name,
            location_id=location_id,
            telephone_number=report.telephone_number,
        )
        # The history says what located the device: its report, or a wiremap entry.
        wiremap = resolved.source not in ("address", "geo")
        binding = Binding(
            aeui=aeui,
            carrier_endpoint_id=endpoint.endpoint_id,
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
            source=f"wiremap:{resolved.source}" if wiremap else "report",
        )
        self.known.distrust(aeui)  # until the carrier confirms, trust nothing cached
        # Decide, atomically and for every replica, that this report is the device's newest
        # and that the device may use its number (``NumberOwned`` otherwise).
        if progress is not None:
            progress.claimed = True
        try:
            claim = await self.ledger.claim(binding, credential=credential)
        except DeviceDeleted as exc:
            raise Superseded(exc.deleted_at, deleted=True) from None
        if not claim.won:
            raise Superseded(newest(claim.current))
        self.known.learn(claim.current)
        version = claim.current.version
        binding = dataclasses.replace(binding, heard_at=claim.current.heard_at, version=version)
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
            # Unconfirmed, a newer claim came in between: its report writes what it needs.
            if await self.ledger.confirm(aeui, version):
                self.known.trust(binding)
            return Outcome(binding, location_change, Change.UNCHANGED, warnings)
        # What the carrier holds is the store's to say (another replica may have written it).
        self.writes.expect(endpoint.endpoint_id or "", previous)
        try:
            endpoint_change, endpoint_id = await self.writes.endpoint(
                endpoint, address, create_first=first_seen and previous is None
            )
        except UpstreamError as exc:
            if exc.ambiguous:
                self.repairs.maybe_applied(aeui)
            else:
                await self._revert(claim, report.observed_at, credential)
            raise
        except asyncio.CancelledError:
            # The report's deadline cut the write short: it may still land.
            self.repairs.maybe_applied(aeui)
            raise
        if endpoint_id != binding.endpoint_id:
            binding = dataclasses.replace(binding, carrier_endpoint_id=endpoint_id)
        record = taken(HistoryKind.APPLIED, previous, claim.current, credential)
        if await self.ledger.confirm(aeui, version, record=record):
            self.known.trust(binding)
        else:
            # A newer report won the ledger while this one was being written, perhaps at
            # another replica (the store kept this write's history entry all the same, as
            # the carrier took it): this write may have landed after its. Make certain.
            self.repairs.maybe_applied(aeui)
            # Or an admin deleted the device meanwhile: the repair deletes what this write
            # may have created again, so it is not answered as applied.
            stored, deleted_at = await self.ledger.get_or_deleted(aeui)
            if stored is None and deleted_at is not None:
                raise Superseded(deleted_at, deleted=True)
        return Outcome(binding, location_change, endpoint_change, warnings)

    async def _revert(self, claim: Claim, observed_at: datetime, credential: str) -> None:
        """The carrier definitively refused the claimed binding: the device keeps its old one
        (nothing is recorded: nothing changed at the carrier). The old place keeps its own
        time, answered as its age; the refused report's time orders the device
        (``ordered_at``), so a report older than it is still superseded."""
        aeui = claim.current.aeui
        previous = claim.previous
        if previous is None:
            await self.ledger.delete(aeui)
            self.known.forget_caller(aeui)
            return
        try:
            restored = await self.ledger.claim(
                dataclasses.replace(previous, ordered_at=max(observed_at, newest(previous))),
                credential=credential,
                check_number=False,  # its own number, held before
            )
        except DeviceDeleted:
            return  # an admin deleted the device meanwhile: nothing to restore
        if restored.won:
            self.known.learn(restored.current)
        if restored.won and previous.confirmed:
            await self.ledger.confirm(aeui, restored.current.version)
            self.known.learn(dataclasses.replace(restored.current, confirmed=True))

    async def _reverse(self, fix: GeoFix) -> GeocodeResult | None:
        if not (math.isfinite(fix.latitude) and math.isfinite(fix.longitude)):
            return None
        if (fix.accuracy_meters or 0.0) > self.conflict_margin_meters:
            message = (
                f"the fix's accuracy of {fix.accuracy_meters:,.0f} m cannot tell a street "
                f"address (at most {self.conflict_margin_meters:,.0f} m): send a civic address"
            )
            raise Unroutable(message, (FieldError("geo", message),))
        try:
            found = await self.geocoder.reverse(fix.latitude, fix.longitude)
        except GeocodingUnavailable:
            message = "the geocoder is unavailable, so a GPS-only report cannot be resolved"
            raise Unroutable(message, (FieldError("geo", message),)) from None
        if found is None or found.precision is not Precision.STREET:
            return None
        # The geocoder's nearest address, when it is far, is not where the device is: the
        # same address sent with this fix would contradict it (``_check_fix``).
        distance = distance_meters(fix.latitude, fix.longitude, found.latitude, found.longitude)
        if distance > self._allowed(fix, found):
            message = (
                f"the nearest street address the geocoder knows is {distance / 1000:,.1f} km"
                " from the GPS fix: send a civic address"
            )
            raise Unroutable(message, (FieldError("geo", message),))
        return found
