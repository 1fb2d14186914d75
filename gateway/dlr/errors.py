"""The one field-level error of the gateway: what is wrong with which field of a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """A field as the sender named it (`address.zip`, `civicAddress.PC`), and what is wrong."""

    field: str
    message: str
