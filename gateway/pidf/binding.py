"""A device's binding (what the carrier holds for it) as a PIDF-LO location object.

The gateway is the presence authority for the devices it provisions, so the ``entity`` is
``pres:<AEUI>@<the host the request reached>``; the AEUI is percent-encoded where a URI needs
it. Usage rules say what a 911 location may be used for: not to be passed on, and kept no
longer than ``RETENTION``.

Coordinates become a shape only when they locate the caller (``gateway.dlr.coordinates``):
the device's own fix, as a Circle of its accuracy, or a street-level geocode, as a Circle of
the default radius. A ZIP or city centroid gets no shape at all: drawn as a Point it would
read as a fix. The ``<timestamp>`` is when the location was observed, left out when that is
not known (never the time of the request).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from urllib.parse import quote

from gateway.dlr.binding import known_time
from gateway.dlr.coordinates import radius_meters
from gateway.dlr.pipeline import Binding
from gateway.pidf.civic import from_address
from gateway.pidf.document import LocationObject
from gateway.pidf.geodetic import Shape

#: How long a recipient may keep the location (``retention-expiry``).
RETENTION = timedelta(hours=24)

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_FALLBACK_HOST = "dlr-gateway.invalid"
#: RFC 3986 userinfo characters that need no percent-encoding (``:`` would start a password).
_USER_SAFE = "-._~!$&'()*+,;="


def entity(alternate_end_user_id: str, host: str | None) -> str:
    """``pres:<AEUI>@<host>``; a host that is not a plain DNS name is not reflected."""
    domain = host if host and _HOST.fullmatch(host) else _FALLBACK_HOST
    return f"pres:{quote(alternate_end_user_id, safe=_USER_SAFE)}@{domain}"


def location_object(binding: Binding, *, host: str | None, now: datetime) -> LocationObject:
    """The binding's location: its civic address, and a Circle where its coordinates
    locate the caller."""
    civic = (
        from_address(binding.address, caller_name=binding.caller_name or None)
        if binding.address is not None
        else {}
    )
    shape = None
    latitude, longitude = binding.latitude, binding.longitude
    radius = radius_meters(binding.coordinates_source, binding.accuracy_meters)
    if (
        radius is not None
        and latitude is not None
        and longitude is not None
        and math.isfinite(latitude)
        and math.isfinite(longitude)
    ):
        shape = Shape(latitude, longitude, float(radius))
    number = binding.telephone_number
    return LocationObject(
        entity=entity(binding.aeui, host),
        timestamp=known_time(binding.observed_at),
        retention_expiry=now + RETENTION,
        civic=civic,
        shape=shape,
        contact=f"tel:{number}" if number else None,
    )
