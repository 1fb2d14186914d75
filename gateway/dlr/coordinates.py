"""How precise a device's coordinates are, and how far apart two places are.

Every answer that carries coordinates names their precision in one vocabulary
(``gateway.geocoding.results.Precision``): ``gps`` (the device's own fix), ``street`` (a
street-level geocode of its address), ``postal`` (a ZIP centroid), ``locality`` (a city or
coarser). Only ``gps`` and ``street`` locate a caller: they alone are given as a position
(a radius around them in PIDF-LO, HELD and the call-time answer); coarser ones are named as
such and never drawn as a point.
"""

from __future__ import annotations

import math

from gateway.geocoding.results import Precision, distance_meters

__all__ = [
    "DEFAULT_RADIUS_METERS",
    "DISPATCHABLE",
    "distance_meters",
    "radius_meters",
    "uncertainty_meters",
]

#: The radius of a position without a measured accuracy (a street-level geocode, a fix that
#: gave none): the carrier's own default for comparing a position with a location.
DEFAULT_RADIUS_METERS = 50
#: Precisions that locate a caller.
DISPATCHABLE = frozenset({Precision.GPS, Precision.STREET})

#: How far the true place may be from coordinates of each precision, beyond a fix's own
#: accuracy: what a fix is allowed to differ from its address's geocode by. A ZIP or a city
#: centroid can be tens of kilometres from an address in it.
_UNCERTAINTY = {
    Precision.GPS: 0.0,
    Precision.STREET: 0.0,
    Precision.POSTAL: 30_000.0,
    Precision.LOCALITY: 60_000.0,
}


def uncertainty_meters(precision: Precision) -> float:
    return _UNCERTAINTY[precision]


def radius_meters(precision: str | None, accuracy: float | None) -> int | None:
    """The radius to give around coordinates of ``precision``: a fix's own accuracy (whole
    metres, at least 1), else the default; ``None`` for coordinates that do not locate a
    caller (they get no shape at all)."""
    if precision == Precision.GPS and accuracy is not None and math.isfinite(accuracy):
        return max(1, math.ceil(accuracy))
    if precision in DISPATCHABLE:
        return DEFAULT_RADIUS_METERS
    return None
