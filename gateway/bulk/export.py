"""``export``: what the gateway holds, in the import format (export -> import changes nothing).

Devices: each device's binding the gateway holds (its AEUI, caller name, callback number,
location and that location's address). Locations: those the gateway knows the carrier holds.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.bulk.formats import DEVICES, address_cells, write
from gateway.dlr.pipeline import address_from_json
from gateway.store.imports import ImportStore


def _address(text: str | None) -> dict[str, str]:
    data: dict[str, Any] | None = None if text is None else json.loads(text)
    return address_cells(address_from_json(data))


async def export(kind: str, imports: ImportStore) -> str:
    """The CSV text of every device or location the gateway holds."""
    locations = {row["location_id"]: row["address"] for row in await imports.locations()}
    if kind == DEVICES:
        rows = [
            {
                "AEUI": d["aeui"],
                "CallerName": d["caller_name"],
                "CallbackNumber": d["telephone_number"],
                "LocationId": d["location_id"],
                **_address(d["address"] or locations.get(d["location_id"])),
            }
            for d in await imports.devices()
        ]
    else:
        rows = [
            {"LocationId": location_id, **_address(address)}
            for location_id, address in locations.items()
        ]
    return write(kind, rows)
