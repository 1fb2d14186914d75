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
from datetime import datetime
from typing import Protocol

from cachetools import LRUCache

from gateway.bandwidth.errors import (
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.bandwidth.models import Address, Endpoint, EndpointListResponse, Location
from gateway.concurrency import KeyedLocks, SingleFlight
from gateway.dlr.address import FieldError, Normalized
from gateway.dlr.ids import endpoint_id_for, location_id_for
from gateway.geocoding.results import GeocodeResult, GeocodingUnavailable, Precision

log = logging.getLogger("gateway.pipeline")


class Carrier(Protocol):
    """The carrier operations the pipeline uses (``BandwidthClient`` is one)."""

    async def create_location(self, location: Location) -> Location: ...
    async def get_location(self, location_id: str) -> Location: ...
    async def get_endpoint(self, endpoint_id: str) -> Endpoint: ...
    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint: ...
    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint: ...
    async def list_endpoints(self) -> EndpointListResponse: ...


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


@dataclass(frozen=True, slots=True)
class Outcome:
    binding: Binding
    location: Change
    endpoint: Change
    warnings: tuple[FieldError, ...] = ()

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
    status: str | None
    latitude: float | None
    longitude: float | None


_NOT_DISPATCHABLE = (
    "the GPS fix does not resolve to a street address: send a civic address "
    "(a city or ZIP centroid is not a dispatchable 911 location)"
)


def _in_address(error: FieldError) -> FieldError:
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
    ) -> None:
        self.carrier = carrier
        self.geocoder = geocoder
        self.normalize = normalize
        self.clock = clock
        self.on_repair = on_repair
        self.repair_retry_delays = repair_retry_delays
        #: The binding each device should have at the carrier: its newest report that was
        #: acknowledged, or whose write failed with an unknown outcome.
        self._desired: LRUCache[str, Binding] = LRUCache(binding_cache_size)
        #: Devices with a write the carrier has not answered yet (abandoned, still watched).
        self._unsettled: dict[str, int] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._locations: LRUCache[str, _KnownLocation] = LRUCache(location_cache_size)
        self._bindings: LRUCache[str, Binding] = LRUCache(binding_cache_size)
        self._newest: LRUCache[str, datetime] = LRUCache(binding_cache_size)
        self._foreign_ids: LRUCache[str, str] = LRUCache(max(1024, binding_cache_size // 100))
        self._creating: SingleFlight[str, tuple[_KnownLocation, Change]] = SingleFlight()
        self._devices: KeyedLocks[str] = KeyedLocks()

    # -- reading -------------------------------------------------------------------------

    def endpoint_id(self, alternate_end_user_id: str) -> str:
        """The device's endpoint ID: derived, unless the carrier holds it under another."""
        return self._foreign_ids.get(alternate_end_user_id) or endpoint_id_for(
            alternate_end_user_id
        )

    def cached(self, alternate_end_user_id: str) -> Binding | None:
        return self._bindings.get(alternate_end_user_id)

    async def current(self, alternate_end_user_id: str) -> Binding | None:
        """The device's binding: from the cache, else read from the carrier."""
        known = self._bindings.get(alternate_end_user_id)
        if known is not None:
            return known
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
        return Binding(
            alternate_end_user_id=alternate_end_user_id,
            endpoint_id=endpoint.endpoint_id or self.endpoint_id(alternate_end_user_id),
            location_id=endpoint.location_id,
            caller_name=endpoint.caller_name or "",
            telephone_number=endpoint.telephone_number or "",
            address=location.address,
            status=location.status,
            latitude=location.latitude,
            longitude=location.longitude,
            observed_at=self._newest.get(alternate_end_user_id),
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

    async def resolve(self, report: Report) -> tuple[Address, tuple[FieldError, ...]]:
        """The report's canonical civic address, or ``Unroutable``.

        Field errors and warnings name the report's field: ``address`` or ``address.<field>``
        for the address sent, ``geo`` for one found by reverse geocoding the device's fix.
        """
        if report.address is not None:
            normalized = self.normalize(report.address)
            where = _in_address
        elif report.geo is not None:
            reversed_ = await self._reverse(report.geo)
            if reversed_ is None or reversed_.address is None:
                raise Unroutable(_NOT_DISPATCHABLE, (FieldError("geo", _NOT_DISPATCHABLE),))
            normalized = self.normalize(reversed_.address)
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
        return normalized.address, tuple(map(where, normalized.warnings))

    async def report(self, report: Report) -> Outcome:
        address, warnings = await self.resolve(report)
        aeui = report.alternate_end_user_id
        location_id = location_id_for(address)
        async with self._devices.hold(aeui):
            newest = self._newest.get(aeui)
            if newest is not None and report.observed_at < newest:
                raise Superseded(newest)
            current = self._bindings.get(aeui)
            if (
                current is not None
                and aeui not in self._unsettled
                and current.location_id == location_id
                and current.caller_name == report.caller_name
                and current.telephone_number == report.telephone_number
            ):
                self._newest[aeui] = report.observed_at
                binding = dataclasses.replace(current, observed_at=report.observed_at)
                self._bindings[aeui] = binding
                return Outcome(binding, Change.UNCHANGED, Change.UNCHANGED, warnings)
            return await self._apply(report, address, location_id, warnings)

    async def _apply(
        self,
        report: Report,
        address: Address,
        location_id: str,
        warnings: tuple[FieldError, ...],
    ) -> Outcome:
        aeui = report.alternate_end_user_id
        known = self._locations.get(location_id)
        location_change = Change.UNCHANGED
        if known is None:
            coordinates, geo_warnings = await self._coordinates(address, report.geo)
            warnings += geo_warnings
            known, location_change = await self._creating.do(
                location_id, lambda: self._create_location(location_id, address, coordinates)
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
            latitude=known.latitude,
            longitude=known.longitude,
            observed_at=report.observed_at,
        )
        self._bindings.pop(aeui, None)  # until the carrier confirms, trust nothing cached
        try:
            endpoint_change, endpoint_id = await self._upsert_endpoint(endpoint)
        except UpstreamError as exc:
            if exc.ambiguous:
                self._maybe_applied(binding)
            raise
        except asyncio.CancelledError:
            # The report's deadline cut the write short: it may still land.
            self._maybe_applied(binding)
            raise
        binding = dataclasses.replace(binding, endpoint_id=endpoint_id)
        self._bindings[aeui] = binding
        self._desired[aeui] = binding
        self._newest[aeui] = report.observed_at
        return Outcome(binding, location_change, endpoint_change, warnings)

    # -- ambiguous writes and their repair ----------------------------------------------------

    def _maybe_applied(self, binding: Binding) -> None:
        """A write of ``binding`` failed, but the carrier may hold it (or hold it later).

        It becomes the device's desired binding and newest report (so an older report cannot
        overwrite it), and a repair check is scheduled: by the time the error reached us the
        carrier has answered or the connection is gone, unless the client is still watching
        an abandoned exchange, whose settling schedules its own check.
        """
        aeui = binding.alternate_end_user_id
        self._desired[aeui] = binding
        newest = self._newest.get(aeui)
        if binding.observed_at is not None and (newest is None or binding.observed_at > newest):
            self._newest[aeui] = binding.observed_at
        self._spawn(self._repair_later(aeui, 0.0))

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
            except UpstreamError as exc:
                if wait is None:
                    log.warning("repair of %s gave up after %d tries: %s", aeui, attempt + 1, exc)
                    self._bindings.pop(aeui, None)  # the next report writes again
                    return
                await asyncio.sleep(wait)

    async def repair(self, alternate_end_user_id: str) -> bool:
        """Make the carrier hold the device's desired binding; ``True`` when it had to write."""
        aeui = alternate_end_user_id
        async with self._devices.hold(aeui):
            desired = self._desired.get(aeui)
            if desired is None:
                return False
            try:
                held: Endpoint | None = await self.carrier.get_endpoint(desired.endpoint_id)
            except UpstreamNotFound:
                held = None
            if held is not None and (
                held.location_id == desired.location_id
                and held.caller_name == desired.caller_name
                and held.telephone_number == desired.telephone_number
            ):
                if aeui not in self._unsettled:
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
            await self._upsert_endpoint(endpoint)
            log.warning(
                "repaired %s: the carrier held location %s, not %s",
                aeui,
                held.location_id if held is not None else None,
                desired.location_id,
            )
            if self.on_repair is not None:
                self.on_repair("regressed" if held is not None else "missing")
            if aeui not in self._unsettled:
                self._bindings[aeui] = desired
            return True

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

    async def _coordinates(
        self, address: Address, fix: GeoFix | None
    ) -> tuple[tuple[float, float] | None, tuple[FieldError, ...]]:
        """Coordinates worth sending: the device's own fix, else a street-level geocode."""
        if fix is not None:
            return (fix.latitude, fix.longitude), ()
        try:
            found = await self.geocoder.geocode(address)
        except GeocodingUnavailable:
            note = FieldError(
                "address", "the geocoder is unavailable: provisioned without coordinates"
            )
            return None, (note,)
        if found is None or found.precision not in (Precision.STREET, Precision.GPS):
            return None, ()
        return (found.latitude, found.longitude), ()

    async def _create_location(
        self, location_id: str, address: Address, coordinates: tuple[float, float] | None
    ) -> tuple[_KnownLocation, Change]:
        latitude, longitude = coordinates if coordinates is not None else (None, None)
        location = Location(
            location_id=location_id, address=address, latitude=latitude, longitude=longitude
        )
        try:
            created = await self.carrier.create_location(location)
        except UpstreamConflict:
            known = _KnownLocation(None, latitude, longitude)
            change = Change.UNCHANGED
        except UpstreamRejected as exc:
            if isinstance(exc, UpstreamNotFound):
                raise
            message = f"the carrier refused the address: {exc.description or exc.message}"
            raise Unroutable(message, (FieldError("address", message),)) from None
        else:
            known = _KnownLocation(created.status, created.latitude, created.longitude)
            change = Change.CREATED
        self._locations[location_id] = known
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
