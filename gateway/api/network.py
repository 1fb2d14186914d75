"""``/v1/network/*``: the wiremap's admin API (admin key only), and ``resolve``.

Each kind has its collection: ``subnets``, ``access-points``, ``switches``, ``ports``.
An entry is ``{subnet | bssid | chassisId [+ portId], address, locationId?, description?}``;
its ``address`` is a civic address validated like a report's, with ``addressLine2`` the place
inside (``FL 3 RM 301``). An entry given only a ``locationId`` takes that carrier location's
address. Its ``id`` is derived from its network identity, which never changes (a PUT may
change the location and the description). A device token gets 403 everywhere here: the
wiremap is the building's floor plan, not a device's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import require_admin
from gateway.api.context import Services, services
from gateway.api.problems import FieldProblem, Problem
from gateway.api.schemas import read_json, record_from_json
from gateway.bandwidth.errors import UpstreamNotFound
from gateway.bandwidth.models import Address
from gateway.dlr.address import FieldError
from gateway.dlr.pipeline import address_json
from gateway.jsondump import JSONResponse
from gateway.metrics import Metrics
from gateway.network.service import (
    MemoryWiremapStore,
    Normalizer,
    NotFound,
    Wiremap,
    WiremapStore,
)
from gateway.network.wiremap import (
    MAX_LOCATION_ID,
    Conflict,
    Entry,
    Kind,
    WiremapError,
    parse_observation,
)
from gateway.settings import Settings

#: The collections, by path segment.
COLLECTIONS: Mapping[str, Kind] = {
    "subnets": Kind.SUBNET,
    "access-points": Kind.ACCESS_POINT,
    "switches": Kind.SWITCH,
    "ports": Kind.PORT,
}
_PATH = {kind: path for path, kind in COLLECTIONS.items()}
#: The field that holds each kind's network identity.
KEY_FIELD = {
    Kind.SUBNET: "subnet",
    Kind.ACCESS_POINT: "bssid",
    Kind.SWITCH: "chassisId",
    Kind.PORT: "chassisId",
}
_BODY_FIELDS = frozenset(
    {"subnet", "bssid", "chassisId", "portId", "address", "locationId", "description"}
)
MAX_PAGE = 1000


def wiremap_of(request: Request) -> Wiremap:
    found: Wiremap = request.app.state.wiremap
    return found


def _admin(request: Request) -> Services:
    s = services(request)
    request.state.principal = require_admin(request, s.admin_keys, s.device_tokens)
    return s


def entry_json(entry: Entry) -> dict[str, Any]:
    body: dict[str, Any] = {"id": entry.id, "kind": entry.kind.value}
    body[KEY_FIELD[entry.kind]] = entry.key
    if entry.port_id is not None:
        body["portId"] = entry.port_id
    body["address"] = address_json(entry.address)
    body["locationId"] = entry.location_id
    body["description"] = entry.description
    return body


def _problems(errors: tuple[FieldError, ...]) -> list[FieldProblem]:
    return [FieldProblem(e.field, e.message) for e in errors]


def invalid(exc: WiremapError) -> Problem:
    return Problem(422, "The wiremap entry is not valid.", errors=_problems(exc.errors))


def conflict(exc: Conflict) -> Problem:
    return Problem(
        409, exc.message, kind="wiremap-conflict", extra={"conflictsWith": entry_json(exc.existing)}
    )


async def _carrier_address(s: Services, location_id: object) -> Address:
    """The address of a location that exists at the carrier."""
    if not isinstance(location_id, str) or not 0 < len(location_id) <= MAX_LOCATION_ID:
        raise Problem(
            422,
            "The wiremap entry is not valid.",
            errors=[FieldProblem("locationId", f"must be 1 to {MAX_LOCATION_ID} characters")],
        )
    try:
        location = await s.upstream.get_location(location_id)
    except UpstreamNotFound:
        location = None
    if location is None or location.address is None:
        raise Problem(
            422,
            "The wiremap entry is not valid.",
            errors=[FieldProblem("locationId", "no location with this ID at the carrier")],
        )
    return location.address


async def _entry(request: Request, s: Services, kind: Kind) -> tuple[Entry, tuple[FieldError, ...]]:
    body = await read_json(request, s.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise Problem(422, "The body must be a JSON object.")
    unknown = sorted(set(body) - _BODY_FIELDS)
    if unknown:
        raise Problem(
            422,
            "The wiremap entry is not valid.",
            errors=[FieldProblem(str(name)[:40], "is not a known field") for name in unknown[:5]],
        )
    raw = body.get("address")
    address: Address | None = None
    if raw is None and body.get("locationId") is not None:
        address = await _carrier_address(s, body["locationId"])
    elif raw is not None:
        address = _address(raw)
    try:
        return wiremap_of(request).build(
            kind,
            body.get(KEY_FIELD[kind]),
            port_id=body.get("portId"),
            address=address,
            location_id=body.get("locationId"),
            description=body.get("description"),
        )
    except WiremapError as exc:
        raise invalid(exc) from None


def _address(raw: object) -> Address:
    """The address object read strictly, as a report's is (unknown fields, wrong types and
    over-long values refused, named ``address.<field>``)."""
    if not isinstance(raw, dict):
        raise Problem(
            422,
            "The wiremap entry is not valid.",
            errors=[FieldProblem("address", "must be an address object")],
        )
    try:
        return record_from_json(Address, raw)
    except Problem as exc:
        errors = [FieldProblem(f"address.{e.field}", e.message) for e in exc.errors]
        raise Problem(422, "The wiremap entry is not valid.", errors=errors) from None


def _with_warnings(entry: Entry, warnings: tuple[FieldError, ...]) -> dict[str, Any]:
    body = entry_json(entry)
    if warnings:
        body["warnings"] = [{"field": w.field, "message": w.message} for w in warnings]
    return body


def _page(request: Request, name: str, default: int, most: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) > most:
        raise Problem(
            422,
            "The query is not valid.",
            errors=[FieldProblem(name, f"must be a whole number up to {most}")],
        )
    return int(raw)


async def list_entries(kind: Kind, request: Request) -> Response:
    _admin(request)
    offset = _page(request, "offset", 0, 10**9)
    limit = max(1, _page(request, "limit", 100, MAX_PAGE))
    every = wiremap_of(request).entries(kind)
    shown = every[offset : offset + limit]
    following = offset + len(shown)
    return JSONResponse(
        {
            "entries": [entry_json(e) for e in shown],
            "total": len(every),
            "nextOffset": following if following < len(every) else None,
        }
    )


async def create_entry(kind: Kind, request: Request) -> Response:
    s = _admin(request)
    entry, warnings = await _entry(request, s, kind)
    try:
        warnings += await wiremap_of(request).create(entry)
    except Conflict as exc:
        raise conflict(exc) from None
    except WiremapError as exc:
        raise invalid(exc) from None
    return JSONResponse(
        _with_warnings(entry, warnings),
        status_code=201,
        headers={"Location": f"/v1/network/{_PATH[kind]}/{entry.id}"},
    )


def _held(request: Request, kind: Kind) -> Entry:
    entry = wiremap_of(request).get(str(request.path_params["entry_id"]))
    if entry is None or entry.kind is not kind:
        raise Problem(404, f"There is no {kind.value} entry with that ID.")
    return entry


async def get_entry(kind: Kind, request: Request) -> Response:
    _admin(request)
    return JSONResponse(entry_json(_held(request, kind)))


async def update_entry(kind: Kind, request: Request) -> Response:
    s = _admin(request)
    held = _held(request, kind)
    entry, warnings = await _entry(request, s, kind)
    try:
        warnings += await wiremap_of(request).update(held.id, entry)
    except NotFound:
        raise Problem(404, f"There is no {kind.value} entry with that ID.") from None
    except WiremapError as exc:
        raise invalid(exc) from None
    return JSONResponse(_with_warnings(entry, warnings))


async def delete_entry(kind: Kind, request: Request) -> Response:
    _admin(request)
    held = _held(request, kind)
    with contextlib.suppress(NotFound):  # deleted in between: the outcome asked for
        await wiremap_of(request).delete(held.id)
    return Response(status_code=204)


async def resolve(request: Request) -> Response:
    """Which entry wins for ``{ip, bssid, chassisId, portId}``, its location, and why."""
    s = _admin(request)
    body = await read_json(request, s.settings.max_body_bytes)
    try:
        observation = parse_observation(body, prefix="")
    except WiremapError as exc:
        errors = _problems(exc.errors)
        raise Problem(422, "The observations are not valid.", errors=errors) from None
    match = wiremap_of(request).resolve(observation)
    if match is None:
        raise Problem(
            404,
            f"No wiremap entry matches: tried {observation.tried()}.",
            kind="wiremap-no-match",
            extra={"tried": observation.as_json()},
        )
    return JSONResponse(
        {
            "source": match.source,
            "entry": entry_json(match.entry),
            "location": address_json(match.entry.address),
        }
    )


def _routes() -> list[Route]:
    found = [Route("/v1/network/resolve", resolve, methods=["POST"])]
    for path, kind in COLLECTIONS.items():
        collection, item = f"/v1/network/{path}", f"/v1/network/{path}/{{entry_id}}"
        found += [
            Route(collection, functools.partial(list_entries, kind), methods=["GET"]),
            Route(collection, functools.partial(create_entry, kind), methods=["POST"]),
            Route(item, functools.partial(get_entry, kind), methods=["GET"]),
            Route(item, functools.partial(update_entry, kind), methods=["PUT"]),
            Route(item, functools.partial(delete_entry, kind), methods=["DELETE"]),
        ]
    return found


routes = _routes()


async def open_wiremap(
    settings: Settings,
    ledger: object,
    normalize: Normalizer,
    metrics: Metrics,
    stack: contextlib.AsyncExitStack,
) -> Wiremap:
    """The replica's wiremap, loaded, and (over a shared store) kept up with the others."""
    from gateway.store.sql import SqlStateStore
    from gateway.store.wiremap import SqlWiremapStore

    store: WiremapStore = (
        SqlWiremapStore(ledger) if isinstance(ledger, SqlStateStore) else MemoryWiremapStore()
    )
    wiremap = Wiremap(
        store, normalize, on_resolve=metrics.network_resolved, on_size=metrics.network_sized
    )
    await wiremap.refresh()
    if isinstance(store, SqlWiremapStore):
        task = asyncio.get_running_loop().create_task(
            wiremap.refresh_forever(settings.network_refresh_seconds), name="wiremap-refresh"
        )

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop)
    return wiremap
