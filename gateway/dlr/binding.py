"""A device's binding: the one record of it, in the pipeline, the caches and the state store."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.bandwidth.models import Address, Endpoint, wire_name
from gateway.dlr.ids import endpoint_id_for
from gateway.records import record_to_json

_ADDRESS_FIELDS = {wire_name(f.name): f.name for f in dataclasses.fields(Address)}


def address_json(address: Address) -> dict[str, Any]:
    """The address in the carrier's camelCase fields, absent ones left out."""
    return record_to_json(address)


def address_from_json(data: Mapping[str, Any] | None) -> Address | None:
    if not data:
        return None
    return Address(**{_ADDRESS_FIELDS[k]: v for k, v in data.items() if k in _ADDRESS_FIELDS})


@dataclass(frozen=True, slots=True)
class Binding:
    """What the carrier is meant to hold for one device: its endpoint, location and number.

    The state store keeps one row of it per device (``gateway.store.mapping`` maps it);
    ``version`` is bumped by every claim that wins, and ``confirmed`` says the carrier took
    that version. A binding read from the carrier itself has no ``observed_at``.
    """

    aeui: str
    location_id: str
    caller_name: str
    telephone_number: str
    address: Address | None
    observed_at: datetime | None = None
    #: The carrier location's status (not stored: the carrier's).
    status: str | None = None
    #: ``report`` or ``admin``: who made this the device's binding.
    source: str = "report"
    confirmed: bool = False
    latitude: float | None = None
    longitude: float | None = None
    version: int = 0
    #: The precision of ``latitude``/``longitude`` (``gateway.dlr.coordinates``): ``gps``
    #: (this device's own fix), ``street``, ``postal`` or ``locality`` (a geocode of its
    #: address); ``None`` when they are the carrier's own, or absent.
    coordinates_source: str | None = None
    #: The device's GPS accuracy in meters, when the coordinates are its own fix.
    accuracy_meters: float | None = None
    #: When the gateway last heard from the device (its own clock; ``None``: unknown).
    heard_at: datetime | None = None
    #: The device's token attested ``telephone_number`` (its ``phone_number`` claim).
    attested: bool = False
    #: A time the device's order has reached though its place was not observed then (a
    #: move the carrier refused; an admin's endpoint for a device deleted before), when
    #: later than ``observed_at``: reports older than it are superseded (``newest``), while
    #: ``observed_at`` stays the place's own time, the one answered (its age). ``None``:
    #: ``observed_at`` orders alone.
    ordered_at: datetime | None = None
    #: The device's endpoint ID when it is not the one derived from the AEUI (an endpoint the
    #: carrier named itself); ``None`` for the derived one, nearly every device's: not kept
    #: per device (memory). Read ``endpoint_id``, which is either.
    carrier_endpoint_id: str | None = None

    def __post_init__(self) -> None:
        own = self.carrier_endpoint_id
        if own is not None and own == endpoint_id_for(self.aeui):
            object.__setattr__(self, "carrier_endpoint_id", None)

    @property
    def endpoint_id(self) -> str:
        """The device's endpoint ID at the carrier."""
        own = self.carrier_endpoint_id
        return endpoint_id_for(self.aeui) if own is None else own

    def seen_at(self, observed_at: datetime, heard_at: datetime | None = None) -> Binding:
        """This binding at a newer time, heard at ``heard_at``: ``dataclasses.replace``
        without its introspection (on every unchanged report; a test holds the two equal)."""
        return Binding(
            self.aeui,
            self.location_id,
            self.caller_name,
            self.telephone_number,
            self.address,
            observed_at,
            self.status,
            self.source,
            self.confirmed,
            self.latitude,
            self.longitude,
            self.version,
            self.coordinates_source,
            self.accuracy_meters,
            heard_at or self.heard_at,
            self.attested,
            self.ordered_at,
            self.carrier_endpoint_id,
        )

    def same_as(self, location_id: str, caller_name: str, telephone_number: str) -> bool:
        return (
            self.location_id == location_id
            and self.caller_name == caller_name
            and self.telephone_number == telephone_number
        )

    def endpoint(self) -> Endpoint:
        """The carrier's endpoint this binding stands for."""
        return Endpoint(
            endpoint_id=self.endpoint_id,
            alternate_end_user_id=self.aeui,
            caller_name=self.caller_name,
            location_id=self.location_id,
            telephone_number=self.telephone_number,
        )

    def with_coordinates_of(self, other: Binding) -> Binding:
        """This binding with ``other``'s coordinates and how they were established."""
        return dataclasses.replace(
            self,
            latitude=other.latitude,
            longitude=other.longitude,
            coordinates_source=other.coordinates_source,
            accuracy_meters=other.accuracy_meters,
        )

    def as_json(self) -> dict[str, Any]:
        """The binding as recorded in history (camelCase, without bookkeeping)."""
        return {
            "endpointId": self.endpoint_id,
            "locationId": self.location_id,
            "address": None if self.address is None else address_json(self.address),
            "callerName": self.caller_name,
            "telephoneNumber": self.telephone_number,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "precision": self.coordinates_source,
        }

    def same_binding(self, other: Binding | None) -> bool:
        """Whether ``other`` binds the device the same way (times and bookkeeping aside):
        ``as_json`` equal, compared field by field without building it."""
        return other is not None and self._bound() == other._bound()

    def _bound(self) -> tuple[Any, ...]:
        """What ``as_json`` holds, as its values (an address by its own equality)."""
        return (
            self.endpoint_id,
            self.location_id,
            self.address,
            self.caller_name,
            self.telephone_number,
            self.latitude,
            self.longitude,
            self.coordinates_source,
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: Beyond 2**52 µs (the years 1827 to 2112) a float's ``/ 1e6`` could miss by a microsecond.
_PACKABLE = 2**52


def _pack(moment: datetime | None) -> datetime | float | None:
    """A UTC instant as its microseconds since the epoch in a float (24 bytes, a datetime 48;
    exact: whole numbers below 2**53); any other value (another offset, naive) as given."""
    if type(moment) is datetime and moment.tzinfo is UTC and not moment.fold:
        micros = (moment - _EPOCH) // _MICROSECOND
        if -_PACKABLE < micros < _PACKABLE:
            return float(micros)
    return moment


def _packed_instant(name: str) -> None:
    """``Binding.<name>`` kept packed in its own slot and read back as the datetime it was:
    the slot's descriptor wrapped in a property, so that ``__init__``, ``replace``, equality,
    hashing, ``repr`` and pickling see the field as before (``tests/dlr/test_binding.py``)."""
    slot = getattr(Binding, name)
    from_timestamp = datetime.fromtimestamp

    def read(binding: Binding) -> datetime | None:
        value = slot.__get__(binding, Binding)
        if value.__class__ is float:
            return from_timestamp(value / 1e6, UTC)
        return value  # type: ignore[no-any-return]

    def write(binding: Binding, value: datetime | None) -> None:
        slot.__set__(binding, _pack(value))

    setattr(Binding, name, property(read, write))


# Two per device (docs/benchmarks.md, "Peak RSS at 100 000 devices, fifth pass").
_packed_instant("observed_at")
_packed_instant("heard_at")


#: The observation time of a binding an admin wrote for a device no report has placed: it
#: orders the device before any report, but is no time anything was observed.
UNKNOWN_OBSERVED_AT = datetime(1970, 1, 1, tzinfo=UTC)


def known_time(at: datetime | None) -> datetime | None:
    """``at``, or ``None`` when it is no real observation time (``UNKNOWN_OBSERVED_AT``):
    what answers, history entries and events show."""
    return None if at is None or at == UNKNOWN_OBSERVED_AT else at


def known_iso(at: datetime | None) -> str | None:
    """``known_time`` of ``at`` as ISO 8601, or ``None``."""
    known = known_time(at)
    return None if known is None else known.isoformat()


def observed(binding: Binding) -> datetime:
    """The binding's observation time; every binding the state store holds has one."""
    at = binding.observed_at  # read once: a property (the instants are packed)
    if at is None:
        raise ValueError(f"the binding of {binding.aeui} has no observation time")
    return at


def newest(binding: Binding) -> datetime:
    """The newest report time the device's order has reached (what a report must not be
    older than): the later of ``observed_at`` and ``ordered_at``."""
    at = observed(binding)
    ordered = binding.ordered_at
    return at if ordered is None or ordered <= at else ordered
