"""The carrier's call-time location query: where is the caller, asked as a 911 call arrives,
answered within the carrier's 450 ms without calling the carrier or a geocoder, its history
and event written after the answer (docs/architecture.md, "The call-time location query")."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.problems import Problem, problem_response
from gateway.api.source import client_address
from gateway.dlr.binding import Binding, known_iso
from gateway.dlr.callers import (
    CallerIndex,
    CallerLocator,
    CallerStore,
    Located,
    age_seconds,
    answer_radius,
    freshest,
    has_dispatchable_coordinates,
    normalize_number,
)
from gateway.events.calls import call_event, call_type
from gateway.events.emitter import Emitter
from gateway.events.model import Event
from gateway.jsondump import dumps
from gateway.metrics import Children, Metrics
from gateway.network.wiremap import parse_networks, within
from gateway.settings import Settings
from gateway.store.base import HistoryKind, HistoryRecord, StateStore

log = logging.getLogger("gateway.emergency")


def is_sqlite_store(store: StateStore) -> bool:
    """SQLite is one process's store (``GATEWAY_DATABASE_URL`` unset, or ``sqlite://``)."""
    return getattr(store, "dialect", None) == "sqlite"


#: The history key of queries for numbers no device has: longer than any AEUI (at most 30
#: characters), so no device's history can ever hold them. Read them with SQL
#: (``SELECT … FROM history WHERE aeui = '~unknown-caller/emergency-query'``).
UNKNOWN_CALLER_KEY = "~unknown-caller/emergency-query"
#: Longest credential looked at.
MAX_CREDENTIAL_LENGTH = 4096

_REALM = 'Basic realm="dlr-gateway emergency query", charset="UTF-8"'


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _same(given: str, expected: bytes) -> bool:
    """Constant time whatever the lengths: digests are compared, never the secrets."""
    return hmac.compare_digest(_digest(given), expected)


class QueryAuth:
    """HTTP Basic and/or a ``token`` query parameter; any configured one that is presented
    must be right, and at least one must be. Nothing configured: every query is refused."""

    def __init__(
        self,
        *,
        username: str | None,
        password: str | None,
        token: str | None,
        allow_cidrs: Sequence[str] = (),
    ) -> None:
        self._basic = (_digest(username), _digest(password)) if username and password else None
        self._token = _digest(token) if token else None
        self._networks = parse_networks(allow_cidrs)

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryAuth:
        password, token = settings.emergency_query_password, settings.emergency_query_token
        return cls(
            username=settings.emergency_query_username,
            password=str(password) if password else None,
            token=str(token) if token else None,
            allow_cidrs=settings.emergency_query_allow_cidrs,
        )

    @property
    def configured(self) -> bool:
        return self._basic is not None or self._token is not None

    def check(self, request: Request) -> str:
        """The credential that passed (``basic`` or ``token``, for the history); else 403 for
        a source outside the allow-list, 401 for missing or wrong credentials."""
        if self._networks and not self._allowed(request):
            raise Problem(403, "This source network may not query caller locations.")
        tokens = request.query_params.getlist("token")
        headers = request.headers.getlist("authorization")
        # One credential of each kind: with two, which one "counts" is a guess an attacker
        # could steer (``token=wrong&token=RIGHT``).
        wrong = len(tokens) > 1 or len(headers) > 1
        passed: list[str] = []
        token = tokens[0] if tokens else None
        if self._token is not None and token is not None:
            if len(token) <= MAX_CREDENTIAL_LENGTH and _same(token, self._token):
                passed.append("token")
            else:
                wrong = True
        basic = _basic_credentials(headers[0] if headers else None)
        if self._basic is not None and basic is not None:
            user_ok = _same(basic[0], self._basic[0])
            password_ok = _same(basic[1], self._basic[1])
            if user_ok and password_ok:
                passed.append("basic")
            else:
                wrong = True
        if wrong or not passed:
            raise Problem(
                401, "The credentials are not valid.", headers={"WWW-Authenticate": _REALM}
            )
        return "+".join(passed)

    def _allowed(self, request: Request) -> bool:
        # An IPv4 peer of a dual-stack socket (``::ffff:a.b.c.d``) is its IPv4 address.
        return within(client_address(request), self._networks)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    if len(header) > MAX_CREDENTIAL_LENGTH:
        return ("", "\x00")  # presented, and wrong (not overlooked beside a right token)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "\x00")  # presented, and wrong
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else ("", "\x00")


class EmergencyQuery:
    """Everything the route needs, built by the app's lifespan (``app.state.emergency``)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        index: CallerIndex,
        store: StateStore | None,
        *,
        clock: Callable[[], datetime] | None = None,
        events: Emitter | None = None,
    ) -> None:
        self.settings = settings
        #: Where each query's facts go once the answer has been sent: its
        #: ``emergency_call``/``test_call`` event and its history record, written together
        #: (none without a state store). Started and stopped by the app's ``Events``.
        self.recorder = events
        self.metrics = metrics
        self.auth = QueryAuth.from_settings(settings)
        caller_store: CallerStore | None = store
        self.locator = CallerLocator(
            index,
            caller_store,
            timeout=settings.emergency_query_db_timeout,
            single_writer=store is not None and is_sqlite_store(store),
        )
        self.clock = clock or (lambda: datetime.now(UTC))
        #: The count and duration children by result (bounded: the route's few results).
        self._counted: Children[str, tuple[Counter, Histogram]] = Children(
            lambda result: (
                self.metrics.emergency_queries.labels(result=result),
                self.metrics.emergency_query_duration.labels(result=result),
            )
        )

    def count(self, result: str, elapsed: float) -> None:
        children = self._counted[result]
        children[0].inc()
        children[1].observe(elapsed)

    def start(self) -> None:
        if not self.auth.configured:
            log.info(
                "the emergency-call location query is refused: set "
                "GATEWAY_EMERGENCY_QUERY_USERNAME/PASSWORD or GATEWAY_EMERGENCY_QUERY_TOKEN"
            )

    async def aclose(self) -> None:
        await self.locator.aclose()


def _text(value: str | None, limit: int = 64) -> str | None:
    return None if value is None else value[:limit]


def _answer(binding: Binding) -> dict[str, Any]:
    body: dict[str, Any] = {"aeui": binding.aeui, "location_id": binding.location_id}
    if has_dispatchable_coordinates(binding):
        body["lat"] = binding.latitude
        body["lon"] = binding.longitude
        body["radius"] = answer_radius(binding)
    if binding.telephone_number:
        body["callback"] = binding.telephone_number
    if binding.caller_name:
        body["name"] = binding.caller_name
    return body


def _json(body: dict[str, Any]) -> Response:
    return Response(
        dumps(body),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def emergency_location(request: Request) -> Response:
    q: EmergencyQuery = request.app.state.emergency
    started = time.perf_counter()
    result = "error"
    try:
        try:
            credential = q.auth.check(request)
        except Problem as exc:
            result = "unauthorized" if exc.status == 401 else "forbidden"
            raise
        response, result = await _locate(q, request, credential)
        return response
    finally:
        q.count(result, time.perf_counter() - started)


@dataclass(slots=True, eq=False)  # not frozen: a frozen one's __init__ is slower
class Answered:
    """A query answered with a device's location: what its history record and its event
    are built from, in the writers' batches."""

    queried_at: datetime
    number: str | None
    called: str | None
    fallback: str | None
    credential: str
    source: str
    binding: Binding
    answered: dict[str, Any]
    age: float | None
    stale: bool
    devices: int

    @property
    def type(self) -> str:
        return call_type(self.called)

    def record(self) -> HistoryRecord:
        binding = self.binding
        return HistoryRecord(
            aeui=binding.aeui,
            kind=HistoryKind.EMERGENCY_QUERY,
            credential=f"emergency-query-{self.credential}",
            source=self.source,
            before=None,
            after={
                "queriedAt": self.queried_at.isoformat(),
                "from": self.number,
                "to": self.called,
                "fallback": self.fallback,
                "status": 200,
                "answered": self.answered,
                "locationId": binding.location_id,
                "binding": "confirmed" if binding.confirmed else "desired",
                "precision": binding.coordinates_source,
                "bindingSource": binding.source,
                "observedAt": known_iso(binding.observed_at),
                "locationAgeSeconds": None if self.age is None else round(self.age, 3),
                "stale": self.stale,
                "devicesOnNumber": self.devices,
            },
            observed_at=binding.observed_at,
        )

    def event(self) -> Event:
        return call_event(
            queried_at=self.queried_at,
            callback_number=self.number,
            called_number=self.called,
            binding=self.binding,
            age_seconds=self.age,
            stale=self.stale,
            devices_on_number=self.devices,
            answer="device",
        )


@dataclass(slots=True, eq=False)  # not frozen: a frozen one's __init__ is slower
class Unanswered:
    """A query for a number no device has: answered 404, or the account's default
    location (``answered``)."""

    queried_at: datetime
    number: str | None
    called: str | None
    fallback: str | None
    credential: str
    #: ``not_found`` or ``default``.
    result: str
    status: int
    answered: dict[str, Any] | None

    @property
    def type(self) -> str:
        return call_type(self.called)

    def record(self) -> HistoryRecord:
        after: dict[str, Any] = {
            "queriedAt": self.queried_at.isoformat(),
            "from": self.number,
            "to": self.called,
            "fallback": self.fallback,
            "status": self.status,
            "answered": self.answered,
        }
        if self.answered:
            after["locationId"] = self.answered["location_id"]
        return HistoryRecord(
            aeui=UNKNOWN_CALLER_KEY,
            kind=HistoryKind.EMERGENCY_QUERY,
            credential=f"emergency-query-{self.credential}",
            source=self.result,
            before=None,
            after=after,
            observed_at=None,
        )

    def event(self) -> Event:
        return call_event(
            queried_at=self.queried_at,
            callback_number=self.number,
            called_number=self.called,
            binding=None,
            answer="default" if self.answered else "not_found",
            default_location_id=None if not self.answered else self.answered["location_id"],
        )


def _recorded(q: EmergencyQuery, facts: Answered | Unanswered) -> None:
    """Queue the query's facts once: its history record and its event are built and
    written after the answer, in one transaction per batch (the event emitter's)."""
    if q.recorder is not None:
        q.recorder.emit(facts)


async def _locate(q: EmergencyQuery, request: Request, credential: str) -> tuple[Response, str]:
    now = q.clock()
    raw_from = request.query_params.get("from")
    called = _text(request.query_params.get("to"))
    number = normalize_number(raw_from)
    located = await q.locator.locate(number) if number else Located([], "cache")
    if located.fallback is not None:
        q.metrics.emergency_query_store_fallbacks.labels(reason=located.fallback).inc()
    shown = number or _text(raw_from)
    if not located.bindings:
        return _unknown(q, now, shown, called, located.fallback, credential)
    binding = freshest(located.bindings)
    devices = len({b.aeui for b in located.bindings})
    if devices > 1:
        q.metrics.emergency_query_shared_lines.inc()
    age = age_seconds(binding, now)  # None: an admin's endpoint no report has placed
    stale = False
    if age is not None:
        q.metrics.emergency_query_location_age.observe(age)
        stale = age > q.settings.emergency_query_stale_after
    if stale and age is not None:
        q.metrics.emergency_query_stale.inc()
        log.warning(
            "emergency query answered a stale location",
            extra={"aeui": binding.aeui, "age_s": round(age), "source": located.source},
        )
    body = _answer(binding)
    response = _json(body)
    _recorded(
        q,
        Answered(
            now,
            shown,
            called,
            located.fallback,
            credential,
            located.source,
            binding,
            body,
            age,
            stale,
            devices,
        ),
    )
    return response, located.source


def _unknown(
    q: EmergencyQuery,
    now: datetime,
    number: str | None,
    called: str | None,
    fallback: str | None,
    credential: str,
) -> tuple[Response, str]:
    """No device has this number: 404 (the carrier routes on its own records), or the
    account's default location, as configured."""
    s = q.settings
    if s.emergency_query_unknown_caller == "default" and s.emergency_query_default_location_id:
        default = {
            "aeui": s.emergency_query_default_aeui,
            "location_id": s.emergency_query_default_location_id,
        }
        body: dict[str, Any] | None = default
        status, result, response = 200, "default", _json(default)
    else:
        body = None
        status, result = 404, "not_found"
        problem = Problem(404, "No device has this callback number.")
        response = problem_response(problem, s.emergency_query_path)
    _recorded(q, Unanswered(now, number, called, fallback, credential, result, status, body))
    return response, result


def routes(settings: Settings) -> list[Route]:
    return [Route(settings.emergency_query_path, emergency_location, methods=["GET"])]
