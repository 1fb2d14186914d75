"""HELD by network identity (RFC 5985, RFC 6155): ``<ip>``, ``<mac>`` or the source address.

An admin key may name a network identity: an ``<ip>`` (looked up by subnet) or a ``<mac>``
(a BSSID). A request with no credentials and no ``<device>`` asks for the location of its own
source address (HELD's default, RFC 5985 section 6.1: its client address,
``gateway.api.source``), answered only when that address is inside
``GATEWAY_NETWORK_TRUSTED_CIDRS``: those hosts are the enterprise's own network, whose
wiremap locates them. A device token never reads the wiremap. The answer is the
wiremap entry's civic address with ``<method>Wiremap</method>``; ``locationUnknown`` when no
entry matches.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import UTC, datetime

from starlette.requests import Request

from gateway.api.auth import Principal, authenticate
from gateway.api.context import Services
from gateway.api.devices import limit_reads
from gateway.api.network import wiremap_of
from gateway.api.source import client_address
from gateway.network.wiremap import (
    Network,
    Observation,
    WiremapError,
    parse_bssid,
    parse_ip,
    parse_networks,
    within,
)
from gateway.pidf.binding import RETENTION, entity
from gateway.pidf.civic import from_address
from gateway.pidf.document import LocationObject
from gateway.pidf.held import HeldError, LocationRequest

#: The geopriv ``<method>`` of a location found in the wiremap (the IANA method token).
METHOD = "Wiremap"


def _trusted(request: Request, s: Services) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The source address, when it is inside a trusted network."""
    source = client_address(request)
    if source is None:
        return None
    if within(source, _networks(s.settings.network_trusted_cidrs)):
        return source
    return None


@functools.lru_cache(maxsize=4)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(cidrs)


def principal_or_source(request: Request, s: Services) -> Principal | None:
    """The request's credential; ``None`` for a request without one from a trusted network
    (which may ask only for its own source address); 401 otherwise."""
    if not request.headers.getlist("authorization") and _trusted(request, s) is not None:
        return None
    return authenticate(request, s.admin_keys, s.device_tokens)


def _observation(held: LocationRequest, principal: Principal | None) -> Observation | None:
    """The network identity the request asks about; ``None`` when it names a device."""
    network = [d for d in held.device if d.kind in ("ip", "mac")]
    if principal is None:
        if held.device:
            raise HeldError(
                "badIdentifier",
                "without credentials a host may ask only for its own location (no <device>)",
            )
        return None
    if not network:
        return None
    if not principal.is_admin:
        raise HeldError("badIdentifier", "a device token cannot locate by <ip> or <mac>")
    if len(network) != len(held.device) or len({d.kind for d in network}) > 1:
        raise HeldError("badIdentifier", "name one network identity: one <ip> or one <mac>")
    if len({d.value.strip().lower() for d in network}) > 1:
        raise HeldError("badIdentifier", "the identifiers name different network identities")
    value = network[0].value
    try:
        if network[0].kind == "ip":
            return Observation(ip=parse_ip(value, "ip"))
        return Observation(bssid=parse_bssid(value, "mac", wildcard=False))
    except WiremapError as exc:
        raise HeldError("badIdentifier", str(exc)) from None


def locate(
    request: Request, s: Services, held: LocationRequest, principal: Principal | None
) -> LocationObject | None:
    """The wiremap's answer to a HELD request about a network identity; ``None`` when the
    request is about a device (answered from its binding instead)."""
    observation = _observation(held, principal)
    if observation is None and principal is None:
        source = _trusted(request, s)
        if source is None:  # pragma: no cover - principal_or_source let it through
            raise HeldError("badIdentifier", "not a trusted network")
        limit_reads(s, f"held-source:{source}")
        observation = Observation(ip=source)
    if observation is None:
        return None
    match = wiremap_of(request).resolve(observation)
    if match is None:
        raise HeldError("locationUnknown", f"no wiremap entry matches {observation.tried()}")
    named = next(iter(observation.as_json().values()))
    return LocationObject(
        entity=entity(named, request.url.hostname),
        timestamp=None,
        retention_expiry=datetime.now(UTC) + RETENTION,
        civic=from_address(match.entry.address),
        method=METHOD,
    )
