"""The carrier's records (``gateway.bandwidth.models``) as camelCase JSON: one writer for the
API's answers, the simulator's state file and the state store's address column."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from gateway.bandwidth.models import Record, wire_name

#: Each record type's fields and their wire names, read once per type (a handful of types).
_WIRE_FIELDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _wire_fields(kind: type[Any]) -> tuple[tuple[str, str], ...]:
    found = _WIRE_FIELDS.get(kind)
    if found is None:
        found = tuple((f.name, wire_name(f.name)) for f in dataclasses.fields(kind))
        _WIRE_FIELDS[kind] = found
    return found


def record_to_json(record: Record) -> dict[str, Any]:
    """The record as camelCase JSON, absent values left out."""
    out: dict[str, Any] = {}
    for name, wire in _wire_fields(type(record)):
        value = getattr(record, name)
        if value is None:
            continue
        if type(value) is str:  # most fields: nothing to look into
            out[wire] = value
        elif isinstance(value, tuple):
            out[wire] = [record_to_json(item) for item in value]
        elif dataclasses.is_dataclass(value):
            out[wire] = record_to_json(typing.cast(Record, value))
        else:
            out[wire] = value
    return out
