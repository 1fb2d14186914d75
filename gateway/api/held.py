"""``POST /v1/held``: HELD (RFC 5985) for the devices the gateway provisions: a
``locationRequest`` answered with the device's current binding as a PIDF-LO, or a HELD
``<error>``; the choices it makes are in docs/architecture.md ("HELD")."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api import held_network
from gateway.api.auth import MAX_SUBJECT_LENGTH, Principal
from gateway.api.context import Services, services
from gateway.api.devices import limit_reads
from gateway.api.problems import Problem
from gateway.api.schemas import read_body
from gateway.dlr.callers import normalize_number
from gateway.dlr.pipeline import Binding
from gateway.pidf.binding import location_object
from gateway.pidf.document import LocationObject
from gateway.pidf.held import HeldError, LocationRequest, read_request, write_error, write_response
from gateway.pidf.namespaces import HELD_MEDIA_TYPE

#: Distinct device identifiers one request may carry: a device has an AEUI and a number or
#: two, and every identifier must name the same device.
MAX_DEVICE_IDS = 8


def _held(body: bytes) -> Response:
    return Response(body, media_type=HELD_MEDIA_TYPE)


async def _devices_with(number: str, s: Services) -> set[str]:
    """The AEUIs of (at most two of) the devices whose callback number is ``number``, as
    the state store has them, or without one the caller index."""
    return {row.aeui for row in await s.pipeline.devices_with(number, limit=2)}


async def _by_number(number: str, principal: Principal, s: Services) -> str:
    """The AEUI of the device with callback number ``number``."""
    number = normalize_number(number) or number
    if not principal.is_admin:
        own = await s.pipeline.current(principal.subject)
        if own is None:
            raise HeldError("locationUnknown", "no location is registered for this device")
        if own.telephone_number != number:
            raise HeldError("badIdentifier", "a device token may ask only for its own number")
        return principal.subject
    found = await _devices_with(number, s)
    if not found:
        raise HeldError("locationUnknown", "no device is registered with this number")
    if len(found) > 1:
        raise HeldError(
            "badIdentifier", f"{len(found)} devices share this number; name the device's AEUI"
        )
    return found.pop()


async def _identify(held: LocationRequest, principal: Principal, s: Services) -> str:
    """The AEUI the request is about, which the requester must be allowed to see."""
    if not held.device:
        if principal.is_admin:
            raise HeldError(
                "badIdentifier",
                "an admin key must name the device (RFC 6155 <device> with a <uri>)",
            )
        return principal.subject
    devices = tuple(dict.fromkeys(held.device))
    if len(devices) > MAX_DEVICE_IDS:
        raise HeldError(
            "requestError",
            f"{len(devices)} distinct device identifiers; a request may name one device by"
            f" at most {MAX_DEVICE_IDS}",
        )
    named: set[str] = set()
    for device in devices:
        aeui = (
            device.value if device.kind == "aeui" else await _by_number(device.value, principal, s)
        )
        named.add(aeui)
    if len(named) > 1:
        raise HeldError("badIdentifier", "the identifiers name different devices")
    aeui = named.pop()
    if len(aeui) > MAX_SUBJECT_LENGTH or not aeui.isprintable():
        raise HeldError("badIdentifier", "not a device ID the gateway provisions")
    if not principal.may_act_for(aeui):
        raise HeldError("badIdentifier", "a device token may ask only for its own location")
    return aeui


def _select(lo: LocationObject, held: LocationRequest) -> LocationObject:
    """The location types asked for (RFC 5985 section 6.1: ``locationType``, ``exact``)."""
    has = {"civic": bool(lo.civic), "geodetic": lo.shape is not None}
    if not any(has.values()):
        raise HeldError("locationUnknown", "the device's record holds no location")
    wanted = set(held.types)
    if "any" in wanted:
        return lo
    if held.exact:
        missing = [t for t in held.types if t == "locationURI" or not has.get(t)]
        if missing:
            raise HeldError("cannotProvideLiType", f"cannot provide: {' '.join(missing)}")
    keep = {t for t in ("civic", "geodetic") if t in wanted and has[t]}
    if not keep:  # not exact, and nothing asked for exists: give what there is
        return lo
    return dataclasses.replace(
        lo,
        civic=lo.civic if "civic" in keep else {},
        shape=lo.shape if "geodetic" in keep else None,
    )


async def _lookup(held: LocationRequest, principal: Principal, s: Services) -> Binding:
    deadline = s.settings.report_deadline
    if held.response_time is not None:
        deadline = min(deadline, held.response_time)
    if not principal.is_admin:
        limit_reads(s, principal.subject)  # it may ask only about its own device
    try:
        async with asyncio.timeout(deadline):
            aeui = await _identify(held, principal, s)
            if principal.is_admin:
                limit_reads(s, aeui)
            binding = await s.pipeline.current(aeui)
    except TimeoutError:
        if held.response_time is not None:
            raise HeldError("timeout", "the location was not found within responseTime") from None
        raise HeldError("generalLisError", "the location could not be found in time") from None
    if binding is None:
        raise HeldError("locationUnknown", "no location is registered for this device")
    return binding


async def held_location(request: Request) -> Response:
    s = services(request)
    principal = held_network.principal_or_source(request, s)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != HELD_MEDIA_TYPE:
        raise Problem(415, "Send the body as application/held+xml.")
    data = await read_body(request, s.settings.max_body_bytes)
    try:
        held = read_request(data, max_bytes=s.settings.max_body_bytes)
        network = held_network.locate(request, s, held, principal)
        if network is not None:
            return _held(write_response(_select(network, held)))
        assert principal is not None  # locate() answers every request without one
        binding = await _lookup(held, principal, s)
        request.state.aeui = binding.aeui  # named in the request's log line
        lo = location_object(binding, host=request.url.hostname, now=datetime.now(UTC))
        return _held(write_response(_select(lo, held)))
    except HeldError as exc:
        return _held(write_error(exc.code, exc.message))


routes = [Route("/v1/held", held_location, methods=["POST"])]
