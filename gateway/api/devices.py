"""Device-facing routes: location reports, a device's current location, address validation."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import Principal, authenticate
from gateway.api.context import Services, services
from gateway.api.memo import cut
from gateway.api.pidf import is_pidf, location_response, prefers_pidf, read_pidf_report
from gateway.api.problems import FieldProblem, Problem
from gateway.api.schemas import (
    ReportSource,
    check_string,
    decode_json,
    is_json,
    read_body,
    read_json,
    record_from_json,
    record_to_json,
    require_object,
)
from gateway.bandwidth.errors import UpstreamError
from gateway.bandwidth.models import Address
from gateway.dlr.address import FieldError, validate_caller_name
from gateway.dlr.coordinates import radius_meters
from gateway.dlr.identity import aeui_problem
from gateway.dlr.numbers import CALLBACK_NUMBER_RULE, callback_number
from gateway.dlr.patterns import END
from gateway.dlr.pipeline import (
    Binding,
    GeoFix,
    Normalizer,
    Outcome,
    Report,
    Superseded,
    Unroutable,
    in_address,
)
from gateway.geocoding.results import GeocodingUnavailable
from gateway.jsondump import JSONResponse
from gateway.network.wiremap import Observation, WiremapError, parse_observation
from gateway.store import HistoryEntry, StateStore
from gateway.store.base import NumberOwned

#: How far ahead of the gateway's clock a device's ``observedAt`` may be, by default
#: (``GATEWAY_OBSERVED_AT_MAX_FUTURE``).
MAX_CLOCK_SKEW = timedelta(minutes=2)

_REPORT_FIELDS = {
    "alternateEndUserId",
    "callerName",
    "telephoneNumber",
    "observedAt",
    "address",
    "geo",
    "network",
}
_GEO_FIELDS = {"latitude", "longitude", "accuracyMeters"}
_REQUIRED = ("alternateEndUserId", "callerName", "telephoneNumber", "observedAt")

#: RFC 3339 ``date-time`` (section 5.6) with an offset, from the year 1000 and without a leap
#: second (Python has none): ``datetime.fromisoformat`` alone also takes ISO 8601 forms RFC 3339
#: does not (week dates, basic format, no offset), so the shape is checked first. The API
#: document carries it as ``observedAt``'s pattern.
OBSERVED_AT_PATTERN = (
    r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    rf"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]){END}"
)
_RFC3339 = re.compile(OBSERVED_AT_PATTERN)
#: ``observedAt`` ahead of the gateway's clock: not the request's shape, the device's clock.
_CHECK_CLOCK = "check the device's clock"


def _ahead(max_future: timedelta) -> FieldProblem:
    return FieldProblem(
        "observedAt",
        f"is more than {max_future.total_seconds():g} s ahead of the gateway's clock; "
        + _CHECK_CLOCK,
    )


def _is_ahead(error: FieldProblem) -> bool:
    return error.field == "observedAt" and error.message.endswith(_CHECK_CLOCK)


_DETAILS = {
    "validation": "The report is not valid.",
    "unroutable-address": "The address cannot be routed.",
    "clock-skew": "The report comes from a clock ahead of the gateway's.",
}


def _problems(errors: Sequence[FieldProblem], address: Sequence[FieldProblem] = ()) -> Problem:
    """One answer naming every problem; its type says what to fix first: what the request
    says (``validation``), then where (``unroutable-address``), then the device's clock."""
    if not all(map(_is_ahead, errors)):
        kind = "validation"
    elif address:
        kind = "unroutable-address"
    else:
        kind = "clock-skew"
    return Problem(422, _DETAILS[kind], kind, errors=[*errors, *address])


def _aeui(value: Any, where: str, errors: list[FieldProblem]) -> str | None:
    problem = aeui_problem(value)
    if problem is not None:
        errors.append(FieldProblem(where, problem))
        return None
    assert isinstance(value, str)
    return value


def telephone(value: Any, where: str, errors: list[FieldProblem]) -> str | None:
    """A callback number (``callback_number``), as E.164: reports and admin endpoints."""
    text, reason = check_string(value, where, 32)
    if reason or text is None:
        errors.append(FieldProblem(where, reason or "required"))
        return None
    number = callback_number(text)
    if number is None:
        errors.append(FieldProblem(where, CALLBACK_NUMBER_RULE))
    return number


def _observed_at(
    value: Any, errors: list[FieldProblem], max_future: timedelta = MAX_CLOCK_SKEW
) -> datetime | None:
    text, reason = check_string(value, "observedAt", 64)
    when: datetime | None = None
    if not reason and text is not None and _RFC3339.fullmatch(text):
        when = _parse_rfc3339(text)
    if when is None or when.tzinfo is None:
        errors.append(FieldProblem("observedAt", "expected an RFC 3339 timestamp with an offset"))
        return None
    if when - datetime.now(UTC) > max_future:
        errors.append(_ahead(max_future))
        return None
    return when


def _parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp (shape already checked); ``None`` for impossible values."""
    head, _, rest = text.upper().partition(".")
    if rest:
        # Python keeps microseconds: a longer fraction is cut to 6 digits, not rounded.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        head = f"{head}.{rest[:digits][:6]}{rest[digits:]}"
    try:
        when = datetime.fromisoformat(head.replace("Z", "+00:00"))
        when.astimezone(UTC)  # a year-1 time east of UTC has no UTC instant
    except (ValueError, OverflowError):
        return None
    return when


def _number(
    body: dict[str, Any], key: str, low: float, high: float, errors: list[FieldProblem]
) -> float | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(FieldProblem(f"geo.{key}", "expected a number"))
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        number = math.inf
    if not (math.isfinite(number) and low <= number <= high):
        errors.append(FieldProblem(f"geo.{key}", f"expected a number from {low:g} to {high:g}"))
        return None
    return number


def _geo(value: Any, errors: list[FieldProblem]) -> GeoFix | None:
    if not isinstance(value, dict):
        errors.append(FieldProblem("geo", "expected an object"))
        return None
    for key in value.keys() - _GEO_FIELDS:
        errors.append(FieldProblem(f"geo.{key}", "unknown field"))
    latitude = _number(value, "latitude", -90, 90, errors)
    longitude = _number(value, "longitude", -180, 180, errors)
    accuracy = None
    if value.get("accuracyMeters") is not None:
        accuracy = _number(value, "accuracyMeters", 0, 1_000_000, errors)
    if latitude is None or longitude is None:
        return None
    return GeoFix(latitude, longitude, accuracy)


def _address_input(value: Any, errors: list[FieldProblem]) -> Any:
    """A free-form line as it is, or the address object read strictly (the API's ``Address``:
    unknown fields, wrong types and over-long strings are refused, named ``address.<field>``)."""
    if isinstance(value, str):
        text, reason = check_string(value, "address", 500)
        if reason:
            errors.append(FieldProblem("address", reason))
        return text
    if isinstance(value, dict):
        try:
            return record_from_json(Address, value)
        except Problem as exc:
            errors.extend(FieldProblem(f"address.{e.field}", e.message) for e in exc.errors)
            return None
    errors.append(FieldProblem("address", "expected an address object or one free-form string"))
    return None


def _given(body: dict[str, Any], key: str) -> bool:
    return body.get(key) is not None


def parse_report(data: Any, *, max_future: timedelta = MAX_CLOCK_SKEW) -> Report:
    """A report from a decoded body, or a 422 naming every field that is wrong.

    A field that is present is checked by its value, never by its truthiness (``""``, ``0``
    and ``false`` are wrong values, not missing ones); ``null`` counts as missing.
    ``observedAt`` may be at most ``max_future`` ahead of the gateway's clock.
    """
    body = dict(require_object(data))
    errors: list[FieldProblem] = [
        FieldProblem(key, "unknown field") for key in sorted(body.keys() - _REPORT_FIELDS)
    ]
    for key in _REQUIRED:
        if not _given(body, key):
            errors.append(FieldProblem(key, "required"))
    aeui = (
        _aeui(body["alternateEndUserId"], "alternateEndUserId", errors)
        if _given(body, "alternateEndUserId")
        else None
    )
    caller = body.get("callerName")
    if caller is not None:
        bad = validate_caller_name(caller)
        if bad is not None:
            errors.append(FieldProblem(bad.field, bad.message))
    number = (
        telephone(body["telephoneNumber"], "telephoneNumber", errors)
        if _given(body, "telephoneNumber")
        else None
    )
    observed = (
        _observed_at(body["observedAt"], errors, max_future) if _given(body, "observedAt") else None
    )
    address = _address_input(body["address"], errors) if _given(body, "address") else None
    geo = _geo(body["geo"], errors) if _given(body, "geo") else None
    network = _network(body["network"], errors) if _given(body, "network") else None
    if not any(_given(body, key) for key in ("address", "geo", "network")):
        errors.append(FieldProblem("address", "send an address, a geo fix, or both"))
    if errors:
        raise _problems(errors)
    if aeui is None or number is None or observed is None or not isinstance(caller, str):
        # Unreachable: each of these either parsed or added an error above.
        raise _problems([FieldProblem("body", "cannot be read")])
    return Report(
        alternate_end_user_id=aeui,
        caller_name=caller.strip(),
        telephone_number=number,
        observed_at=observed,
        address=address,
        geo=geo,
        network=network,
    )


def _network(value: Any, errors: list[FieldProblem]) -> Observation | None:
    """The report's ``network`` observations (``gateway.network``), errors named."""
    try:
        return parse_observation(value)
    except WiremapError as exc:
        errors.extend(FieldProblem(e.field, e.message) for e in exc.errors)
        return None


def _coordinate(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@functools.lru_cache(maxsize=16_384)
def _cached_address_json(address: Address) -> dict[str, Any]:
    return record_to_json(address)


def _address_json(address: Address) -> dict[str, Any]:
    """``record_to_json(address)``, memoized per (frozen, hashable) address; a fresh copy
    each time, so that a caller may change its answer."""
    return dict(_cached_address_json(address))


def coordinates_json(
    latitude: float | None, longitude: float | None, precision: str | None, accuracy: float | None
) -> dict[str, Any]:
    """``latitude``, ``longitude``, their ``precision`` and the ``radiusMeters`` that covers
    them (``gateway.dlr.coordinates``): coordinates of no known precision are not given."""
    latitude, longitude = _coordinate(latitude), _coordinate(longitude)
    if precision is None or latitude is None or longitude is None:
        latitude = longitude = precision = None
    return {
        "latitude": latitude,
        "longitude": longitude,
        "precision": precision,
        "radiusMeters": radius_meters(precision, accuracy),
    }


def binding_json(binding: Binding) -> dict[str, Any]:
    return {
        "alternateEndUserId": binding.alternate_end_user_id,
        "endpointId": binding.endpoint_id,
        "locationId": binding.location_id,
        "status": binding.status,
        "address": _address_json(binding.address) if binding.address is not None else None,
        **coordinates_json(
            binding.latitude,
            binding.longitude,
            binding.coordinates_source,
            binding.accuracy_meters,
        ),
        "callerName": binding.caller_name,
        "telephoneNumber": binding.telephone_number,
        "observedAt": binding.observed_at.isoformat() if binding.observed_at else None,
    }


def outcome_json(outcome: Outcome, source: ReportSource | None = None) -> dict[str, Any]:
    body = binding_json(outcome.binding)
    body["changes"] = {"location": outcome.location.value, "endpoint": outcome.endpoint.value}
    body["locationSource"] = outcome.source
    warnings = _field_problems(outcome.warnings)
    if source is not None:
        warnings = [*source.warnings, *source.renamed(warnings)]
    body["warnings"] = [{"field": w.field, "message": w.message} for w in warnings]
    return body


def _field_problems(errors: tuple[FieldError, ...]) -> list[FieldProblem]:
    return [FieldProblem(e.field, e.message) for e in errors]


def _unroutable(exc: Unroutable, source: ReportSource | None = None) -> Problem:
    suggestions = [record_to_json(s) for s in exc.suggestions]
    errors = _field_problems(exc.errors)
    return Problem(
        422,
        f"The address cannot be routed: {exc.message}",
        "unroutable-address",
        errors=source.renamed(errors) if source is not None else errors,
        extra={"suggestions": suggestions},
    )


def _authorized(request: Request, s: Services) -> Principal:
    return authenticate(request, s.admin_keys, s.device_tokens)


def _credential(principal: Principal) -> str:
    """Which credential acted, for the history: never the secret itself."""
    return principal.subject if principal.is_admin else "device-token"


def _may_act(principal: Principal, aeui: str) -> None:
    if not principal.may_act_for(aeui):
        raise Problem(403, "A device token may report and read only its own location.")


def _with_number(principal: Principal, report: Report) -> Report:
    """The report as its token allows it: a token with a ``phone_number`` claim reports that
    number only (403 otherwise), and vouches for it (``Report.number_attested``)."""
    if principal.phone_number is None:
        return report
    if report.telephone_number != principal.phone_number:
        raise Problem(
            403,
            "This device token is issued for another callback number.",
            errors=[FieldProblem("telephoneNumber", "must be the token's phone_number")],
        )
    if not principal.attested:
        return report
    return dataclasses.replace(report, number_attested=True)


def number_owned(exc: NumberOwned, principal: Principal) -> Problem:
    """409: another device owns the number (named to admins only: a device learns no AEUI)."""
    extra: dict[str, Any] = {"telephoneNumber": exc.telephone_number}
    if principal.is_admin:
        extra["owner"] = exc.owner
    return Problem(
        409,
        "Another device holds this callback number. An admin can release it or mark it "
        "shared (PUT or DELETE /v1/numbers/{telephoneNumber}).",
        "number-owned",
        extra=extra,
    )


_NO_SOURCE = ReportSource(None)


async def _read_report(
    request: Request, s: Services, principal: Principal
) -> tuple[Report, ReportSource]:
    """The report, and the body it was read from in the JSON API's shape (JSON as it is, a
    PIDF-LO read into it). A JSON body the memo knows but for its ``observedAt`` is not
    decoded again: only the new time is read and checked (``gateway.api.memo``)."""
    content_type = request.headers.get("content-type", "")
    if is_pidf(content_type):
        source = await read_pidf_report(request, s, principal)
        return _parse_source(source, s.normalize, _max_future(s)), source
    if not is_json(content_type):
        raise Problem(415, "Send the report as application/json or application/pidf+xml.")
    body = await read_body(request, s.settings.max_body_bytes)
    memo = cut(body)
    if memo is not None:
        known = s.report_memo.get(memo.template)
        if known is not None:
            errors: list[FieldProblem] = []
            when = _observed_at(memo.observed_at, errors, _max_future(s))
            if when is None:
                raise _problems(errors)
            return known.seen_at(when), _NO_SOURCE
    source = ReportSource(decode_json(body))
    report = _parse_source(source, s.normalize, _max_future(s))
    if memo is not None:
        s.report_memo.put(memo.template, report)
    return report, source


def _max_future(s: Services) -> timedelta:
    return timedelta(seconds=s.settings.observed_at_max_future)


def _parse_source(source: ReportSource, normalize: Normalizer, max_future: timedelta) -> Report:
    """``parse_report`` for a body of any format, errors named as the sender named the fields.

    A report refused for its fields is also checked for its address, so that one answer
    names every problem (not the name first, and the ZIP on the next try).
    """
    try:
        report = parse_report(source.body, max_future=max_future)
    except Problem as exc:
        found = list(exc.errors)
    else:
        if not source.errors:
            return report
        found = []
    address = _address_errors(source.body, found, normalize)
    refused = _problems([*source.errors, *found], address)
    if not source.names and not source.errors:
        raise refused from None
    taken = {e.field for e in source.errors}
    renamed = [e for e in source.renamed([*found, *address]) if e.field not in taken]
    raise Problem(422, refused.detail, refused.kind, errors=[*source.errors, *renamed]) from None


def _address_errors(
    body: Any, found: list[FieldProblem], normalize: Normalizer
) -> list[FieldProblem]:
    """What the normalizer finds wrong with a report's address, when the address itself
    could be read (its own type and size errors are already in ``found``)."""
    if not isinstance(body, dict) or not _given(body, "address"):
        return []
    if any(e.field == "address" or e.field.startswith("address.") for e in found):
        return []
    scratch: list[FieldProblem] = []
    raw = _address_input(body["address"], scratch)
    if scratch or raw is None:
        return []
    return [FieldProblem(e.field, e.message) for e in map(in_address, normalize(raw).errors)]


async def location_report(request: Request) -> Response:
    """A device's report, as JSON or as a PIDF-LO: one code path for both."""
    s = services(request)
    principal = _authorized(request, s)
    started = time.perf_counter()
    result = "error"
    try:
        report, source = await _read_report(request, s, principal)
        request.state.aeui = report.alternate_end_user_id  # named in the request's log line
        _may_act(principal, report.alternate_end_user_id)
        report = _with_number(principal, report)
        wait = s.report_limiter.acquire(report.alternate_end_user_id)
        if wait is not None:
            result = "rate_limited"
            s.metrics.report_rate_limited.inc()
            raise Problem(
                429,
                "This device is sending reports faster than the gateway accepts them.",
                "rate-limited",
                retry_after=s.report_limiter.retry_after(wait),
            )
        try:
            async with asyncio.timeout(s.settings.report_deadline):
                outcome = await s.pipeline.report(report, credential=_credential(principal))
        except TimeoutError:
            result = "upstream_unavailable"
            raise Problem(
                503,
                "The carrier did not confirm the change within the report's deadline. "
                "The gateway keeps watching the write and repairs the record if needed; "
                "send the report again.",
                "upstream-unavailable",
                retry_after=5,
            ) from None
        except Unroutable as exc:
            result = "unroutable"
            raise _unroutable(exc, source) from None
        except Superseded as exc:
            result = "superseded"
            raise Problem(
                409,
                "A newer report for this device has already been applied.",
                "superseded",
                extra={"newestObservedAt": exc.newest.isoformat()},
            ) from None
        except NumberOwned as exc:
            result = "number_owned"
            raise number_owned(exc, principal) from None
        except UpstreamError:
            result = "upstream_unavailable"
            raise
        result = "applied" if outcome.changed else "unchanged"
        return JSONResponse(outcome_json(outcome, source))
    except Problem as exc:
        if result == "error":
            unroutable = exc.kind == "unroutable-address"
            result = {401: "unauthorized", 403: "forbidden"}.get(
                exc.status, "unroutable" if unroutable else "invalid"
            )
        raise
    finally:
        s.metrics.report_done(result, time.perf_counter() - started)


def limit_reads(s: Services, aeui: str) -> None:
    """The per-device rate limit, for reads of a device's location (buckets of their own,
    at the reports' rate): 429 past it. What a read costs the carrier is bounded apart
    (``gateway.dlr.reads``); this keeps one device from monopolizing even the cheap ones."""
    wait = s.read_limiter.acquire(aeui)
    if wait is not None:
        raise Problem(
            429,
            "This device's location is being read faster than the gateway answers.",
            "rate-limited",
            retry_after=s.read_limiter.retry_after(wait),
        )


async def device_location(request: Request) -> Response:
    s = services(request)
    principal = _authorized(request, s)
    errors: list[FieldProblem] = []
    aeui = _aeui(request.path_params["alternate_end_user_id"], "alternateEndUserId", errors)
    if aeui is None:
        raise Problem(404, "There is no device with that ID.")
    _may_act(principal, aeui)
    limit_reads(s, aeui)
    binding = await s.pipeline.current(aeui)
    if binding is None:
        raise Problem(404, "No location is registered for this device.")
    if prefers_pidf(request.headers.get("accept", "")):
        return location_response(request, binding)
    return JSONResponse(binding_json(binding))


async def validate_address(request: Request) -> Response:
    s = services(request)
    _authorized(request, s)
    body = require_object(await read_json(request, s.settings.max_body_bytes))
    errors = [FieldProblem(k, "unknown field") for k in sorted(body.keys() - {"address"})]
    if not _given(dict(body), "address"):
        errors.append(FieldProblem("address", "required"))
    raw = _address_input(body["address"], errors) if _given(dict(body), "address") else None
    if errors or raw is None:
        raise Problem(422, "The request is not valid.", errors=errors)
    normalized = s.normalize(raw)
    answer: dict[str, Any] = {
        "valid": normalized.valid,
        "address": record_to_json(normalized.address) if normalized.address else None,
        **coordinates_json(None, None, None, None),
        "errors": [{"field": e.field, "message": e.message} for e in normalized.errors],
        "warnings": [{"field": e.field, "message": e.message} for e in normalized.warnings],
        "suggestions": [record_to_json(a) for a in normalized.suggestions],
    }
    if normalized.valid and normalized.address is not None:
        await _geocode_into(s, normalized.address, answer)
    return JSONResponse(answer)


async def _geocode_into(s: Services, address: Address, answer: dict[str, Any]) -> None:
    try:
        found = await s.geocoding.geocode(address)
    except GeocodingUnavailable:
        answer["warnings"].append(
            {"field": "address", "message": "the geocoder is unavailable: no coordinates"}
        )
        return
    if found is None:
        answer["warnings"].append(
            {"field": "address", "message": "the geocoder does not know this address"}
        )
        return
    # Shown with their precision; the pipeline sends only street-level ones upstream.
    answer.update(coordinates_json(found.latitude, found.longitude, found.precision.value, None))


_HISTORY_MAX = 200


def _history_entry(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "kind": entry.kind,
        "source": entry.source,
        "credential": entry.credential,
        "observedAt": entry.observed_at.isoformat() if entry.observed_at else None,
        "fromLocationId": entry.from_location_id,
        "toLocationId": entry.to_location_id,
        "before": entry.before,
        "after": entry.after,
    }


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise Problem(
            422,
            "The query is not valid.",
            errors=[FieldProblem(name, f"expected a whole number from {low} to {high}")],
        )
    return int(raw)


async def device_history(request: Request) -> Response:
    """Every change applied to a device's binding, newest first, a page at a time."""
    s = services(request)
    principal = _authorized(request, s)
    errors: list[FieldProblem] = []
    aeui = _aeui(request.path_params["alternate_end_user_id"], "alternateEndUserId", errors)
    if aeui is None:
        raise Problem(404, "There is no device with that ID.")
    _may_act(principal, aeui)
    return await history_page(request, s, aeui, {"alternateEndUserId": aeui})


async def history_page(
    request: Request, s: Services, key: str, subject: dict[str, Any]
) -> Response:
    """One page of the history under ``key`` (a device, a location, a number): ``limit``
    entries before the entry ``before``, newest first, and the ``nextBefore`` to go on."""
    limit = _int_param(request, "limit", 50, 1, _HISTORY_MAX)
    before = _int_param(request, "before", None, 1, 2**62)
    assert limit is not None
    store = s.pipeline.ledger
    entries = (
        await store.history(key, limit=limit, before_id=before)
        if isinstance(store, StateStore)
        else []
    )
    next_before = entries[-1].id if len(entries) == limit else None
    return JSONResponse(
        {
            **subject,
            "entries": [_history_entry(e) for e in entries],
            "nextBefore": next_before,
        }
    )


routes = [
    Route("/v1/location-reports", location_report, methods=["POST"]),
    Route("/v1/devices/{alternate_end_user_id}/location", device_location, methods=["GET"]),
    Route("/v1/devices/{alternate_end_user_id}/history", device_history, methods=["GET"]),
    Route("/v1/addresses/validate", validate_address, methods=["POST"]),
]
