"""Writes to the carrier: a location made sure of, an endpoint updated or created."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamNotFound,
    UpstreamParseError,
    UpstreamRejected,
)
from gateway.bandwidth.models import Address, Endpoint, Location
from gateway.concurrency import SingleFlight
from gateway.dlr.address_canonical import canonical
from gateway.dlr.address_tables import DIRECTIONALS, SUFFIXES
from gateway.dlr.binding import Binding, address_json
from gateway.dlr.errors import FieldError
from gateway.dlr.ledger import Ledger
from gateway.dlr.pipeline.knowledge import Knowledge, KnownLocation
from gateway.dlr.pipeline.ports import Carrier, Geocoder
from gateway.dlr.pipeline.records import Change, Unroutable
from gateway.geocoding.results import GeocodeResult, GeocodingUnavailable, Precision
from gateway.store.base import HistoryKind, HistoryRecord, LocationRecord, location_key

log = logging.getLogger("gateway.pipeline")


@dataclass(slots=True)
class CarrierWrites:
    """The pipeline's writes to the carrier, keeping ``Knowledge`` and the ledger in step."""

    carrier: Carrier
    geocoder: Geocoder
    ledger: Ledger
    known: Knowledge
    _creating: SingleFlight[str, tuple[KnownLocation, Change]] = field(
        default_factory=SingleFlight, init=False
    )
    #: Location IDs whose create (or read after a conflict) the carrier is answering now.
    at_carrier: set[str] = field(default_factory=set, init=False)

    def expect(self, endpoint_id: str, stored: Binding | None) -> None:
        """Tell the carrier client what the store says it holds at ``endpoint_id`` (a
        confirmed binding, perhaps another replica's), or that no one knows for certain."""
        held = None
        if stored is not None and stored.confirmed and stored.endpoint_id == endpoint_id:
            held = stored.endpoint()
        self.carrier.expect(endpoint_id, held)

    async def location(
        self, location_id: str, address: Address, street: tuple[float, float] | None
    ) -> tuple[KnownLocation, Change]:
        """The location known to exist, or created now (one shared call per location)."""
        known = self.known.locations.get(location_id)
        if known is not None:
            return known, Change.UNCHANGED
        return await self._creating.do(
            location_id, lambda: self._ensure_location(location_id, address, street)
        )

    async def endpoint(
        self, endpoint: Endpoint, address: Address | None, *, create_first: bool = False
    ) -> tuple[Change, str]:
        """``_upsert_endpoint``; when the carrier refuses it because its location is gone
        (deleted by an admin, lost by the carrier), the location is forgotten everywhere,
        created again and the write retried, once."""
        try:
            return await self._upsert_endpoint(endpoint, create_first)
        except UpstreamRejected as exc:
            if isinstance(exc, UpstreamNotFound | UpstreamConflict | UpstreamAuthError):
                raise
            location_id = endpoint.location_id
            if address is None or location_id is None or not await self._location_lost(location_id):
                raise
        await self.location(location_id, address, await self._street_point(address))
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
        self.known.locations.pop(location_id, None)
        await self.ledger.forget_location(location_id)
        await self.ledger.record(
            HistoryRecord(
                location_key(location_id),
                kind=HistoryKind.LOCATION_LOST,
                credential="gateway",
                source="carrier",
                before={"locationId": location_id},
                after=None,
                observed_at=None,
            )
        )
        return True

    async def _street_point(self, address: Address) -> tuple[float, float] | None:
        found = await self._geocode(address)
        if found is None or found.precision is not Precision.STREET:
            return None
        return found.latitude, found.longitude

    # -- ambiguous writes and their repair ----------------------------------------------------

    async def _geocode(self, address: Address) -> GeocodeResult | None:
        try:
            return await self.geocoder.geocode(address)
        except GeocodingUnavailable:
            return None

    async def _ensure_location(
        self, location_id: str, address: Address, street: tuple[float, float] | None
    ) -> tuple[KnownLocation, Change]:
        """Make sure the carrier holds the location: known to the ledger, or created now,
        with the address's street-level position when there is one (never a device's fix:
        every device at the address shares the location)."""
        if await self.ledger.locations_known(location_id):
            known = KnownLocation(None)
            self.known.locations[location_id] = known
            return known, Change.UNCHANGED
        latitude, longitude = street if street is not None else (None, None)
        location = Location(
            location_id=location_id, address=address, latitude=latitude, longitude=longitude
        )
        change = Change.CREATED
        self.at_carrier.add(location_id)
        try:
            held = await self.carrier.create_location(location)
        except UpstreamConflict:
            # It exists already (an admin created it, or a store was lost): its status is
            # what the carrier holds, not what this report would have sent.
            held = await self.carrier.get_location(location_id)
            change = Change.UNCHANGED
            if not _same_place(held.address, address):
                # An admin's place under the ID: binding the device there would send its
                # 911 calls to that place.
                message = (
                    f"the carrier holds another address under this address's location ID "
                    f"{location_id}; an admin must delete or correct that location"
                )
                raise Unroutable(message, (FieldError("address", message),)) from None
        except UpstreamRejected as exc:
            if isinstance(exc, UpstreamNotFound | UpstreamAuthError):
                raise  # the carrier's trouble (or ours), not the address's
            message = f"the carrier refused the address: {exc.description or exc.message}"
            raise Unroutable(message, (FieldError("address", message),)) from exc
        finally:
            self.at_carrier.discard(location_id)
        known = KnownLocation(held.status)
        self.known.locations[location_id] = known
        await self.ledger.remember_location(
            LocationRecord(
                location_id, address_json(address), known.status, held.latitude, held.longitude
            )
        )
        return known, change

    async def import_location(
        self, location_id: str, address: Address, description: str | None, *, credential: str
    ) -> bool:
        """An import's location: created at the carrier (read there when it holds it already)
        unless the ledger knows it, and remembered; whether it was created, recorded then."""
        if await self.ledger.locations_known(location_id):
            return False
        location = Location(location_id=location_id, description=description, address=address)
        created = True
        try:
            held = await self.carrier.create_location(location)
        except UpstreamConflict:
            held = await self.carrier.get_location(location_id)
            created = False
        stored = address_json(address)
        await self.ledger.remember_location(
            LocationRecord(location_id, stored, held.status, held.latitude, held.longitude)
        )
        if created:
            after = {"locationId": location_id, "address": stored}
            kind = HistoryKind.LOCATION_CREATED
            record = HistoryRecord.by_admin(
                location_key(location_id), kind, credential, None, after
            )
            await self.ledger.record(record)
        return created

    async def _upsert_endpoint(
        self, endpoint: Endpoint, create_first: bool = False
    ) -> tuple[Change, str]:
        """Update the endpoint; create it when the carrier has none (one more call).
        ``create_first``, for a device the carrier is not expected to hold: create it, and
        only if the carrier holds it after all, the usual path.

        Answers what changed and the endpoint's ID at the carrier.
        """
        assert endpoint.endpoint_id is not None
        assert endpoint.alternate_end_user_id is not None
        if create_first:
            with contextlib.suppress(UpstreamConflict):
                await self.carrier.create_endpoint(endpoint)
                return Change.CREATED, endpoint.endpoint_id
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
            moved = dataclasses.replace(endpoint, endpoint_id=foreign)
            try:
                self.known.foreign_ids[endpoint.alternate_end_user_id] = foreign
                await self.carrier.update_endpoint(foreign, moved)
            except ValueError:
                # The client refuses to put it in a URL ("a/b", "..", too long): the carrier's
                # listing is what cannot be used, not the report (never a 500).
                self.known.foreign_ids.pop(endpoint.alternate_end_user_id, None)
                raise UpstreamParseError(
                    f"listEndpoints: the carrier holds the device under endpoint ID"
                    f" {foreign[:80]!r}, which no request can name",
                    operation="listEndpoints",
                ) from None
            return Change.UPDATED, foreign
        return Change.CREATED, endpoint.endpoint_id

    async def _find_endpoint(self, alternate_end_user_id: str) -> str | None:
        listing = await self.carrier.list_endpoints()
        for endpoint in listing.endpoints:
            if endpoint.alternate_end_user_id == alternate_end_user_id:
                return endpoint.endpoint_id
        return None


#: What must agree exactly, in canonical form, for the carrier's address to be the report's.
_PLACE_FIELDS = ("house_number", "house_suffix", "state_code", "address_line2")
#: What is compared only when the carrier's address has it (a carrier may leave it out).
#: Not the unit: a location without the report's suite is the building, not the place.
_PLACE_IF_HELD = ("city",)


def _same_place(held: Address | None, address: Address) -> bool:
    """Whether the carrier's address could be ``address`` (``None``: it does not say),
    however the carrier spells it: both in canonical form, the street's parts wherever the
    carrier wrote them (``_street``); the city only when the carrier's has it."""
    if held is None:
        return True
    theirs, ours = canonical(held), canonical(address)
    if _street(theirs) != _street(ours) or _zip(theirs) != _zip(ours):
        return False
    if any(getattr(theirs, f) != getattr(ours, f) for f in _PLACE_FIELDS):
        return False
    return all(getattr(theirs, f) in (None, getattr(ours, f)) for f in _PLACE_IF_HELD)


def _street(address: Address) -> tuple[str | None, tuple[str, ...], str | None, str | None]:
    """A canonical address's street as (prefix directional, name, suffix, post directional),
    with what a carrier wrote into the name moved out (``PENNSYLVANIA AVENUE NORTHWEST``:
    ``PENNSYLVANIA``, ``AVE``, ``NW``); a name of one word stays (``NORTH ST``: no ``N``)."""
    prefix, suffix, post = (
        address.prefix_directional,
        address.street_suffix,
        address.post_directional,
    )
    words = (address.street_name or "").split()
    if post is None and len(words) >= 2 and words[-1] in DIRECTIONALS:
        post = DIRECTIONALS[words.pop()]
    if suffix is None and len(words) >= 2 and words[-1] in SUFFIXES:
        suffix = SUFFIXES[words.pop()]
    if prefix is None and len(words) >= 2 and words[0] in DIRECTIONALS:
        prefix = DIRECTIONALS[words.pop(0)]
    return prefix, tuple(SUFFIXES.get(w, w) for w in words), suffix, post


def _zip(address: Address) -> str:
    return (address.zip or "").replace(" ", "")
