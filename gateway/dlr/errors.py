"""The one field-level error of the gateway: what is wrong with which field of a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """``field`` as the sender named it (``address.zip``, ``civicAddress.PC``), and why."""

    field: str
    message: str
