"""The ``emergency_call`` / ``test_call`` event: what the carrier's call-time query was
answered, built after the answer has gone."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from gateway.dlr.callers import answer_radius, has_dispatchable_coordinates
from gateway.events.model import EMERGENCY_CALL, TEST_CALL, Event, EventSink, address_text, iso
from gateway.store.base import StoredBinding

#: The called numbers of a test call (933 checks the caller's registered address).
TEST_NUMBERS = frozenset({"933", "1933"})


def is_test_call(called: str | None) -> bool:
    digits = "".join(ch for ch in called or "" if ch.isdigit())
    return digits in TEST_NUMBERS


def call_event(
    *,
    queried_at: datetime,
    callback_number: str | None,
    called_number: str | None,
    binding: StoredBinding | None,
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
        location = {
            "locationId": binding.location_id,
            "address": binding.address,
            "addressText": address_text(binding.address),
            "observedAt": iso(binding.observed_at),
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
        TEST_CALL if is_test_call(called_number) else EMERGENCY_CALL,
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
    )


#: The longest the event waits for the device's street address from the state store.
ADDRESS_LOOKUP_TIMEOUT = 2.0


async def emit_call(
    events: EventSink,
    lookup: Callable[[str], Awaitable[StoredBinding | None]] | None,
    **facts: Any,
) -> None:
    """Emit the call's event once the answer is sent, with the device's street address from
    the state store when the answer came from memory (which keeps none)."""
    binding: StoredBinding | None = facts.get("binding")
    if binding is not None and binding.address is None and lookup is not None:
        with contextlib.suppress(Exception):  # the event goes out without the street
            async with asyncio.timeout(ADDRESS_LOOKUP_TIMEOUT):
                stored = await lookup(binding.aeui)
            if stored is not None and stored.location_id == binding.location_id:
                facts["binding"] = dataclasses.replace(binding, address=stored.address)
    events.emit(call_event(**facts))
