"""What the gateway knows of the carrier: the one owner of its caches and the caller index.

Bindings the carrier holds (with their ledger version), locations it holds, endpoint IDs
the carrier chose itself, devices with a write still unsettled, the caller index and the
bounded carrier reads. Every job of the pipeline reads and updates them here, so that what
the gateway believes changes in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cachetools import LRUCache

from gateway.bandwidth.errors import UpstreamNotFound
from gateway.bandwidth.models import Location
from gateway.dlr.binding import Binding
from gateway.dlr.callers import CallerIndex
from gateway.dlr.ids import endpoint_id_for
from gateway.dlr.ledger import Ledger
from gateway.dlr.pipeline.ports import Carrier
from gateway.dlr.reads import CarrierReads
from gateway.lru import Lru
from gateway.store.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class KnownLocation:
    """A location the carrier holds (its status, when this replica created it)."""

    status: str | None


class Knowledge:
    """The caches, the caller index and the carrier reads, behind one set of methods."""

    def __init__(
        self,
        carrier: Carrier,
        ledger: Ledger,
        *,
        location_cache_size: int,
        binding_cache_size: int,
        callers: CallerIndex | None,
        reads: CarrierReads[Binding | None] | None,
        shared: bool = False,
    ) -> None:
        self.carrier = carrier
        #: Other processes write the ledger too (replicas on PostgreSQL): a device may have
        #: moved at another replica since this one cached it, so reads ask the ledger first.
        self.shared = shared
        self.ledger = ledger
        self.callers = callers
        self.reads: CarrierReads[Binding | None] = reads if reads is not None else CarrierReads()
        self.locations: LRUCache[str, KnownLocation] = LRUCache(location_cache_size)
        #: Bindings the carrier is known to hold, with their ledger version: what lets an
        #: unchanged report cost no upstream call and no database read.
        self.bindings: Lru[str, Binding] = Lru(max(1, binding_cache_size))
        self.foreign_ids: LRUCache[str, str] = LRUCache(max(1024, binding_cache_size // 100))
        #: Devices with a write the carrier has not answered yet (abandoned, still watched).
        self.unsettled: dict[str, int] = {}

    # -- learning and forgetting ----------------------------------------------------------

    def trust(self, binding: Binding) -> None:
        """The carrier holds ``binding``: cache it and answer calls with it (the same object)."""
        if not binding.confirmed:
            binding = dataclasses.replace(binding, confirmed=True)
        self.bindings[binding.aeui] = binding
        if self.callers is not None:
            self.callers.hold(binding)

    def learn(self, stored: Binding) -> None:
        """A row claimed or confirmed in the ledger: the caller index follows it."""
        if self.callers is not None:
            self.callers.learn(stored)

    def distrust(self, alternate_end_user_id: str) -> None:
        """Until the carrier confirms again, the device's cached binding is not used."""
        self.bindings.pop(alternate_end_user_id, None)

    def forget_caller(self, alternate_end_user_id: str) -> None:
        if self.callers is not None:
            self.callers.forget(alternate_end_user_id)

    def forget_location(self, location_id: str) -> None:
        self.locations.pop(location_id, None)
        for aeui, binding in list(self.bindings.items()):
            if binding.location_id == location_id:
                del self.bindings[aeui]

    def forget_endpoint(self, endpoint_id: str) -> None:
        for aeui, binding in list(self.bindings.items()):
            if binding.endpoint_id == endpoint_id:
                del self.bindings[aeui]

    # -- reading -------------------------------------------------------------------------

    def endpoint_id(self, alternate_end_user_id: str) -> str:
        """The device's endpoint ID: derived, unless the carrier holds it under another."""
        return self.foreign_ids.get(alternate_end_user_id) or endpoint_id_for(alternate_end_user_id)

    def cached(self, alternate_end_user_id: str) -> Binding | None:
        return self.bindings.get(alternate_end_user_id)

    def answerable(self, alternate_end_user_id: str) -> Binding | None:
        """The cached binding, when it may answer a read without the ledger: only when no
        other process writes the ledger (a replica's cache misses another's moves)."""
        return None if self.shared else self.bindings.get(alternate_end_user_id)

    async def current(self, alternate_end_user_id: str) -> Binding | None:
        """The device's binding as the gateway knows it: the cache, then the state store (the
        desired binding, as the call-time query answers it); on a shared store, the store
        first, the cache only while the store cannot be read. The carrier is read only for a
        device neither holds with an address (never reported here, or edited by an admin),
        and then within ``reads``' bounds: once per device per interval, a few at a time."""
        aeui = alternate_end_user_id
        known = self.answerable(aeui)
        if known is not None:
            return known
        try:
            stored = await self.ledger.get(aeui)
        except StoreUnavailable:
            if (cached := self.bindings.get(aeui)) is not None:
                return cached  # the ledger is down: what this replica knows beats nothing
            raise
        if stored is not None and stored.address is not None:
            return stored
        return await self.reads.read(aeui, lambda: self._carrier_binding(aeui))

    async def _carrier_binding(self, alternate_end_user_id: str) -> Binding | None:
        """What the carrier holds for the device: its endpoint and that endpoint's location."""
        try:
            endpoint = await self.carrier.get_endpoint(self.endpoint_id(alternate_end_user_id))
        except UpstreamNotFound:
            return None
        # A v2 endpoint names no AEUI (unless this process wrote it): the one at the
        # device's own endpoint ID is the device's.
        if endpoint.alternate_end_user_id not in (None, alternate_end_user_id):
            return None
        if not endpoint.location_id:
            return None
        try:
            location = await self.carrier.get_location(endpoint.location_id)
        except UpstreamNotFound:
            location = Location(location_id=endpoint.location_id)
        held = Binding(
            aeui=alternate_end_user_id,
            carrier_endpoint_id=endpoint.endpoint_id or self.endpoint_id(alternate_end_user_id),
            location_id=endpoint.location_id,
            caller_name=endpoint.caller_name or "",
            telephone_number=endpoint.telephone_number or "",
            address=location.address,
            status=location.status,
        )
        return await self._as_reported(held)

    async def _as_reported(self, held: Binding) -> Binding:
        """``held`` (read from the carrier) with what the ledger knows of it: when it was
        observed and the device's own coordinates, if the ledger's binding is this one.
        Otherwise both stay unknown: the carrier's coordinates are its own geocode, of no
        stated precision, and the time of an observation no one recorded is not now."""
        try:
            stored = await self.ledger.get(held.aeui)
        except StoreUnavailable:
            return held
        if stored is None or not held.same_as(
            stored.location_id, stored.caller_name, stored.telephone_number
        ):
            return held
        return dataclasses.replace(
            held.with_coordinates_of(stored),
            observed_at=stored.observed_at,
            heard_at=stored.heard_at,
            attested=stored.attested,
            version=stored.version,
            ordered_at=stored.ordered_at,
        )
