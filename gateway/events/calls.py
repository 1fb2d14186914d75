"""The ``emergency_call`` / ``test_call`` event: what the carrier's call-time query was
answered, built after the answer has gone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.dlr.binding import Binding, address_json, known_time
from gateway.dlr.callers import answer_radius, has_dispatchable_coordinates
from gateway.events.model import (
    EMERGENCY_CALL,
    TEST_CALL,
    Event,
    address_text,
    iso,
    new_event_id,
)
from gateway.store.outbox import AddressLookup

#: The called numbers of a test call (933 checks the caller's registered address).
TEST_NUMBERS = frozenset({"933", "1933"})


def is_test_call(called: str | None) -> bool:
    digits = "".join(ch for ch in called or "" if ch.isdigit())
    return digits in TEST_NUMBERS


def call_type(called: str | None) -> str:
    """``test_call`` for a test call's called number, else ``emergency_call``."""
    return TEST_CALL if is_test_call(called) else EMERGENCY_CALL


def call_event(
    *,
    queried_at: datetime,
    callback_number: str | None,
    called_number: str | None,
    binding: Binding | None,
    age_seconds: float | None = None,
    stale: bool = False,
    devices_on_number: int = 0,
    answer: str,
    default_location_id: str | None = None,
) -> Event:
    """``answer`` is ``device`` (a device's location), ``default`` (the account's default
    location) or ``not_found`` (the carrier routes on its own records)."""
    location: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    if binding is not None:
        device = {"aeui": binding.aeui, "callerName": binding.caller_name}
        address = None if binding.address is None else address_json(binding.address)
        observed_at = known_time(binding.observed_at)
        location = {
            "locationId": binding.location_id,
            "address": address,
            "addressText": address_text(address),
            "observedAt": None if observed_at is None else iso(observed_at),
            "ageSeconds": None if age_seconds is None else round(age_seconds, 3),
            "stale": stale,
            "source": binding.source,
            "confirmed": binding.confirmed,
        }
        if has_dispatchable_coordinates(binding):
            location.update(
                latitude=binding.latitude,
                longitude=binding.longitude,
                radiusMeters=answer_radius(binding),
                precision=binding.coordinates_source,
            )
    elif default_location_id is not None:
        location = {"locationId": default_location_id, "default": True}
    return Event.new(
        call_type(called_number),
        {
            "callbackNumber": callback_number,
            "calledNumber": called_number,
            "queriedAt": iso(queried_at),
            "answer": answer,
            "device": device,
            "location": location,
            "devicesOnNumber": devices_on_number,
        },
        at=queried_at,
        # Time-ordered by the query, whenever it is built (``DeferredEvent``).
        id=new_event_id(queried_at),
    )


def with_addresses(batch: list[Event], addresses: AddressLookup) -> None:
    """Give call events answered from memory (which keeps no street address) the device's
    address, read for the whole batch at once, before they are written."""
    wanting = {
        e.data["device"]["aeui"]: e
        for e in batch
        if e.type in (EMERGENCY_CALL, TEST_CALL)
        and e.data.get("device")
        and e.data.get("location")
        and e.data["location"].get("address") is None
    }
    if not wanting:
        return
    found = addresses(wanting)
    for e in batch:
        device, location = e.data.get("device"), e.data.get("location")
        if not device or not location or location.get("address") is not None:
            continue
        location_id, address = found.get(device["aeui"], (None, None))
        if location_id == location["locationId"] and address is not None:
            location["address"] = address
            location["addressText"] = address_text(address)
