"""The carrier's records (``gateway.bandwidth.models``) as camelCase JSON: one writer for the
API's answers, the simulator's state file and the state store's address column."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from gateway.bandwidth.models import Record, wire_name


def record_to_json(record: Record) -> dict[str, Any]:
    """The record as camelCase JSON, absent values left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            out[wire_name(f.name)] = [record_to_json(item) for item in value]
        elif dataclasses.is_dataclass(value):
            out[wire_name(f.name)] = record_to_json(typing.cast(Record, value))
        else:
            out[wire_name(f.name)] = value
    return out
