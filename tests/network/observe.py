"""Observations as the API reads them, for the wiremap's tests."""

from __future__ import annotations

from typing import Any

from gateway.api.network_models import read_observations
from gateway.dlr.errors import FieldError
from gateway.network.wiremap import Observation, WiremapError


def observe(data: Any) -> Observation:
    """``data`` read as a report's ``network``; ``WiremapError`` naming every problem."""
    errors: list[FieldError] = []
    found = read_observations(data, errors)
    if found is None:
        raise WiremapError(tuple(errors))
    return found
