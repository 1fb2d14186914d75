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
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import model_response
from gateway.api.auth import require_admin
from gateway.api.context import Services, services
from gateway.api.models import unreadable_keys, validated
from gateway.api.network_models import (
    COLLECTIONS,
    ENTRIES,
    KEY_FIELD,
    LISTS,
    MAX_PAGE,
    WRITES,
    NetworkResolution,
    read_observations,
)
from gateway.api.problems import Problem, refuse_unknown_query
from gateway.api.routing import resource
from gateway.api.schemas import read_json, require_object
from gateway.bandwidth.errors import UpstreamNotFound
from gateway.bandwidth.models import Address
from gateway.dlr.errors import FieldError
from gateway.dlr.pipeline import address_json
from gateway.metrics import Metrics
from gateway.network.egress import warn_if_unchecked
from gateway.network.service import (
    MemoryWiremapStore,
    Normalizer,
    NotFound,
    Wiremap,
    WiremapStore,
)
from gateway.network.wiremap import Conflict, Entry, Kind, Stale, WiremapError
from gateway.settings import Settings

_PATH = {kind: path for path, kind in COLLECTIONS.items()}
_INVALID = "The wiremap entry is not valid."


def wiremap_of(request: Request) -> Wiremap:
    found: Wiremap = request.app.state.wiremap
    return found


def _admin(request: Request) -> Services:
    s = services(request)
    request.state.principal = require_admin(request, s.admin_keys, s.device_tokens)
    return s


def entry_json(entry: Entry, warnings: tuple[FieldError, ...] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"id": entry.id, "kind": entry.kind.value}
    body[KEY_FIELD[entry.kind]] = entry.key
    if entry.port_id is not None:
        body["portId"] = entry.port_id
    body["address"] = address_json(entry.address)
    body["locationId"] = entry.location_id
    body["description"] = entry.description
    body["warnings"] = list(warnings)
    return body


def _entry_answer(entry: Entry, warnings: tuple[FieldError, ...] = ()) -> BaseModel:
    return ENTRIES[entry.kind].model_validate(entry_json(entry, warnings))


def invalid(exc: WiremapError) -> Problem:
    """422: the address cannot be routed (as a report's), or another field is not valid."""
    if all(e.field == "address" or e.field.startswith("address.") for e in exc.errors):
        return Problem(
            422,
            "The address cannot be routed.",
            "unroutable-address",
            errors=exc.errors,
            extra={"suggestions": []},
        )
    return Problem(422, _INVALID, errors=exc.errors)


def _busy() -> Problem:
    return Problem(
        503, "The wiremap is being changed at another replica: try again.", retry_after=1
    )


def conflict(exc: Conflict) -> Problem:
    return Problem(
        409,
        exc.message,
        kind="wiremap-conflict",
        extra={"conflictsWith": _entry_answer(exc.existing).model_dump(mode="json")},
    )


async def _carrier_address(s: Services, location_id: str) -> Address:
    """The address of a location that exists at the carrier."""
    try:
        location = await s.upstream.get_location(location_id)
    except UpstreamNotFound:
        location = None
    if location is None or location.address is None:
        raise Problem(
            422,
            "The carrier holds no location with this ID.",
            "unknown-location",
            errors=[FieldError("locationId", "no location with this ID at the carrier")],
        )
    return location.address


def _body(model: type[BaseModel], data: Any) -> BaseModel:
    """``data`` read by ``model``, or 422 naming every field that is wrong."""
    readable, errors = unreadable_keys(require_object(data))
    found = validated(model, readable, errors)
    if found is None or errors:
        raise Problem(422, _INVALID, errors=errors)
    return found


async def _entry(request: Request, s: Services, kind: Kind) -> tuple[Entry, tuple[FieldError, ...]]:
    body = _body(WRITES[kind], await read_json(request, s.settings.max_body_bytes))
    fields = dict(body)
    wire = body.model_dump(by_alias=True)
    location_id = fields["location_id"]
    address: Address | None = None
    if fields["address"] is not None:
        address = Address(**dict(fields["address"]))
    elif location_id is not None:
        address = await _carrier_address(s, location_id)
    else:
        message = "send an address, or the locationId of a location at the carrier"
        raise Problem(422, _INVALID, errors=[FieldError("address", message)])
    try:
        return wiremap_of(request).build(
            kind,
            wire[KEY_FIELD[kind]],
            port_id=wire.get("portId"),
            address=address,
            location_id=location_id,
            description=fields["description"],
        )
    except WiremapError as exc:
        raise invalid(exc) from None


def _page(request: Request, name: str, least: int, default: int, most: int) -> int:
    found = request.query_params.getlist(name)
    if not found:
        return default
    raw = found[0]
    if len(found) > 1:
        raw = ""  # said twice: not a number
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not least <= int(raw) <= most:
        raise Problem(
            422,
            "The query is not valid.",
            errors=[FieldError(name, f"must be a whole number from {least} to {most}")],
        )
    return int(raw)


#: The largest ``offset`` of a list (the document's ``maximum``).
MAX_OFFSET = 10**9


async def list_entries(kind: Kind, request: Request) -> Response:
    _admin(request)
    refuse_unknown_query(request, "offset", "limit")
    offset = _page(request, "offset", 0, 0, MAX_OFFSET)
    limit = _page(request, "limit", 1, 100, MAX_PAGE)
    wiremap = wiremap_of(request)
    every = wiremap.entries(kind)
    shown = every[offset : offset + limit]
    following = offset + len(shown)
    answer = LISTS[kind].model_validate(
        {
            "entries": [entry_json(e, wiremap.index.warnings(e)) for e in shown],
            "total": len(every),
            "nextOffset": following if following < len(every) else None,
        }
    )
    return model_response(answer)


async def create_entry(kind: Kind, request: Request) -> Response:
    s = _admin(request)
    entry, warnings = await _entry(request, s, kind)
    try:
        warnings += await wiremap_of(request).create(entry)
    except Conflict as exc:
        raise conflict(exc) from None
    except WiremapError as exc:
        raise invalid(exc) from None
    except Stale:
        raise _busy() from None
    answer = model_response(_entry_answer(entry, warnings), status_code=201)
    answer.headers["Location"] = f"/v1/network/{_PATH[kind]}/{entry.id}"
    return answer


def _held(request: Request, kind: Kind) -> Entry:
    entry = wiremap_of(request).get(str(request.path_params["entry_id"]))
    if entry is None or entry.kind is not kind:
        raise Problem(404, f"There is no {kind.value} entry with that ID.")
    return entry


async def get_entry(kind: Kind, request: Request) -> Response:
    _admin(request)
    entry = _held(request, kind)
    return model_response(_entry_answer(entry, wiremap_of(request).index.warnings(entry)))


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
    except Stale:
        raise _busy() from None
    return model_response(_entry_answer(entry, warnings))


async def delete_entry(kind: Kind, request: Request) -> Response:
    _admin(request)
    held = _held(request, kind)
    with contextlib.suppress(NotFound):  # deleted in between: the outcome asked for
        await wiremap_of(request).delete(held.id)
    return Response(status_code=204)


async def resolve(request: Request) -> Response:
    """Which entry wins for ``{ip, bssid, chassisId, portId}``, its location, and why."""
    s = _admin(request)
    readable, errors = unreadable_keys(await read_json(request, s.settings.max_body_bytes))
    observation = read_observations(readable, errors, prefix="")
    if errors or observation is None:
        raise Problem(422, "The observations are not valid.", errors=errors)
    match = wiremap_of(request).resolve(observation)
    if match is None:
        raise Problem(
            404,
            f"No wiremap entry matches: tried {observation.tried()}.",
            kind="wiremap-no-match",
            extra={"tried": observation.as_json()},
        )
    answer = NetworkResolution(
        source=match.entry.kind,
        entry=entry_json(match.entry),
        location=address_json(match.entry.address),
    )
    return model_response(answer)


def _routes() -> list[Route]:
    found = [Route("/v1/network/resolve", resolve, methods=["POST"])]
    for path, kind in COLLECTIONS.items():
        collection, item = f"/v1/network/{path}", f"/v1/network/{path}/{{entry_id}}"
        found += [
            resource(
                collection,
                get=functools.partial(list_entries, kind),
                post=functools.partial(create_entry, kind),
            ),
            resource(
                item,
                get=functools.partial(get_entry, kind),
                put=functools.partial(update_entry, kind),
                delete=functools.partial(delete_entry, kind),
            ),
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
    warn_if_unchecked(wiremap.index.served(), settings.network_trusted_egress)
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
