"""The async client for the Bandwidth Emergency Calling API: one method per carrier operation.

Each call is bounded by a deadline (all attempts and waits included). Idempotent
operations (GET, PUT, DELETE) are retried on timeouts, dropped connections, 5xx and
429 with exponential backoff and full jitter, honouring ``Retry-After``. A create
(POST) is retried only when it carries a client-chosen ID; then an "already exists"
(409) answer to a retry that followed an attempt of unknown effect is its success, as
is a 404 answering a DELETE retried after such an attempt. A write's error is
``ambiguous`` when any of its attempts may have been applied.

A write whose attempt runs out of time is not cancelled. Cancelling closes the
connection, and then the gateway could never learn whether (or when) the carrier
applied the write, yet a carrier may apply it seconds later, after a newer write. So a
write's exchange runs as a task of its own under a long timeout
(``RetryPolicy.settle_timeout``); the attempt waits for it only its budget, then fails
as an ambiguous ``UpstreamTimeout`` for the retry loop while the exchange goes on,
*abandoned* but watched: ``on_abandoned(operation, record, settled)`` is told, and
``settled`` completes once that exchange has ended (answered, failed, or out of time),
whether the call itself then succeeded or not. A read past its budget is simply
cancelled: it changed nothing. ``aclose()`` cancels the exchanges still out.

Exchanges in flight are capped at ``max_connections``; a call waits for one of these
*slots* before its attempt starts, so that waiting is never counted against the attempt's
timeout, never seen by the circuit breaker, and a request that never left is never
abandoned (a call whose deadline passes while it waits fails, not ambiguous, with nothing
sent). An abandoned write gives its slot back at once: a carrier that holds a third of the
writes must not leave the answered two thirds waiting. Up to ``max_watched`` abandoned
exchanges are watched on connections of their own; past that, the connection of a newly
abandoned one is closed, and its ``settled`` completes when ``settle_timeout`` has passed
since it was sent (by then the carrier has applied it or never will, which is what a
watched exchange's end means too).

A ``CircuitBreaker`` and a ``RetryBudget`` (``resilience.py``), shared by all calls,
keep a dead carrier from being hammered: an open circuit fails calls at once without a
request, and retries are bounded to a share of the calls made. ``AttemptTimeouts`` sets
each attempt's timeout from the carrier's recent latency, ``RetryPolicy.timeout`` at
most. The breaker hears of an attempt's silence only when that attempt had the whole
``RetryPolicy.timeout``: one whose budget was shorter (adaptive, or cut by the call's
deadline after a wait for a slot) says nothing about the carrier.

Every httpx exception is translated into the error tree of ``errors.py`` in one
place (``_translate``); every HTTP answer is mapped in one table (``_STATUS_ERRORS``).
Time is injected (``sleep``, ``clock``, ``random``) so that tests never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import ipaddress
import logging
import random as _random
import re
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from gateway.bandwidth import codec
from gateway.bandwidth.errors import (
    CodecError,
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.bandwidth.models import (
    Endpoint,
    EndpointListResponse,
    Location,
    LocationListResponse,
    NotificationRecipient,
    NotificationRecipientListResponse,
    Record,
)
from gateway.bandwidth.resilience import (
    STATE_VALUES,
    AttemptTimeouts,
    CircuitBreaker,
    CircuitOpenError,
    RetryBudget,
)
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.metrics import Metrics

__all__ = ["AbandonedHook", "BandwidthClient", "RetryPolicy"]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)

#: The declared defaults (``gateway.settings``), for callers that pass no settings.
_DEFAULTS: Final = Settings()

#: ``on_abandoned(operation, record_sent, settled)``; see ``BandwidthClient.on_abandoned``.
AbandonedHook: TypeAlias = Callable[[str, Record | None, Awaitable[None]], None]

#: Path segments the client will put in a URL: no ``/``, no ``%``, no spaces, at most 64.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._~@:+=-]{1,64}")
#: Names that sit beside ``/e911s/{endpointId}`` and so can never be endpoint IDs.
_RESERVED_ENDPOINT_IDS: Final = frozenset({"locations", "notificationrecipients"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one call tries. Waits are ``random() * min(backoff_max, backoff_base * 2**n)``."""

    max_attempts: int = _DEFAULTS.upstream_max_attempts  # for a retryable call
    timeout: float = _DEFAULTS.upstream_timeout  # per attempt: ``AttemptTimeouts``' ceiling
    deadline: float = _DEFAULTS.upstream_deadline  # per call, all attempts and waits included
    backoff_base: float = _DEFAULTS.upstream_backoff_base
    backoff_max: float = _DEFAULTS.upstream_backoff_max
    #: How long a write abandoned at its attempt's timeout is still watched for an answer.
    settle_timeout: float = _DEFAULTS.upstream_settle_timeout
    #: The least an adaptive attempt timeout may be (``AttemptTimeouts``' floor).
    min_timeout: float = _DEFAULTS.upstream_min_timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy the ``GATEWAY_UPSTREAM_*`` settings describe."""
        return cls(
            max_attempts=settings.upstream_max_attempts,
            timeout=settings.upstream_timeout,
            min_timeout=settings.upstream_min_timeout,
            deadline=settings.upstream_deadline,
            backoff_base=settings.upstream_backoff_base,
            backoff_max=settings.upstream_backoff_max,
            settle_timeout=settings.upstream_settle_timeout,
        )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.timeout <= 0 or self.deadline <= 0 or self.min_timeout <= 0:
            raise ValueError("timeout, min_timeout and deadline must be greater than 0")
        if self.settle_timeout <= 0:
            raise ValueError("settle_timeout must be greater than 0")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")


DEFAULT_POLICY: Final = RetryPolicy()


# -- one table: HTTP answers to errors ---------------------------------------

_STATUS_ERRORS: Final[dict[int, type[UpstreamError]]] = {
    400: UpstreamRejected,
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamNotFound,
    409: UpstreamConflict,
    422: UpstreamRejected,
    429: UpstreamRateLimited,
}


def _error_class(status: int) -> type[UpstreamError]:
    known = _STATUS_ERRORS.get(status)
    if known is not None:
        return known
    if 400 <= status < 500:
        return UpstreamRejected
    return UpstreamUnavailable  # 5xx, and the 1xx/3xx a carrier API never sends


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds from now, as delay-seconds or an HTTP-date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    # Measure against the carrier's own clock when it says what time it is.
    now = datetime.now(UTC)
    date = response.headers.get("Date")
    if date:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            sent = email.utils.parsedate_to_datetime(date)
            if sent.tzinfo is not None:
                now = sent
    return max(0.0, (when - now).total_seconds())


def _answer_error(
    response: httpx.Response, root: ET.Element | None, operation: str, *, write: bool
) -> UpstreamError:
    """The error a non-2xx answer (or a 2xx carrying an error body) stands for."""
    status = response.status_code
    found = codec.response_status(root) if root is not None else None
    code = found.code if found is not None else None
    description = found.description if found is not None else None
    cls = _error_class(status) if not 200 <= status < 300 else UpstreamRejected
    message = f"{operation}: HTTP {status}"
    if code or description:
        message += f" ({code or '-'}: {description or '-'})"
    if issubclass(cls, UpstreamRejected):
        return cls(message, operation=operation, status=status, code=code, description=description)
    if issubclass(cls, UpstreamUnavailable):
        return cls(
            message,
            operation=operation,
            status=status,
            # A 5xx may come after the carrier applied the write; a 429 never does.
            ambiguous=write and status >= 500,
            retry_after=_retry_after(response),
        )
    return cls(message, operation=operation, status=status)  # pragma: no cover - table bug


# -- one place: httpx exceptions to errors ------------------------------------

#: Failures that happen before a single byte of the request has left.
_NOTHING_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
#: Failures that another attempt cannot cure.
_NOT_RETRYABLE: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class _Failed(Exception):
    """An attempt's error plus what the retry loop needs to know about it."""

    def __init__(self, error: UpstreamError, reason: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason  # the retry reason, or None when a retry cannot help


@contextlib.contextmanager
def _translate(operation: str, *, write: bool) -> Iterator[None]:
    """Turn httpx's (and the attempt timer's) exceptions into the upstream error tree."""
    try:
        yield
    except (httpx.TimeoutException, TimeoutError) as exc:
        ambiguous = write and not isinstance(exc, _NOTHING_SENT)
        error: UpstreamError = UpstreamTimeout(
            f"{operation}: no answer in time ({type(exc).__name__})",
            operation=operation,
            ambiguous=ambiguous,
        )
        raise _Failed(error, "timeout") from exc
    except httpx.TransportError as exc:
        ambiguous = write and not isinstance(exc, _NOTHING_SENT)
        error = UpstreamUnavailable(
            f"{operation}: connection failed ({type(exc).__name__})",
            operation=operation,
            ambiguous=ambiguous,
        )
        raise _Failed(error, None if isinstance(exc, _NOT_RETRYABLE) else "connection") from exc


# -- abandoned writes -----------------------------------------------------------

_Exchange: TypeAlias = tuple[httpx.Response, bytes | None]


class _Settled:
    """Completes when an abandoned exchange has ended, however it ended; never raises.

    Awaitable any number of times, by any number of waiters: each await is shielded, so a
    waiter that is cancelled cancels only its own wait.
    """

    __slots__ = ("_ended",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._ended: asyncio.Future[None] = task.get_loop().create_future()
        task.add_done_callback(self._end)

    def _end(self, task: asyncio.Task[Any]) -> None:
        if not self._ended.done():
            self._ended.set_result(None)

    def done(self) -> bool:
        return self._ended.done()

    def __await__(self) -> Generator[Any, None, None]:
        return asyncio.shield(self._ended).__await__()

    def __repr__(self) -> str:
        return f"<settled {'done' if self.done() else 'pending'}>"


class _Lease:
    """One of the client's connection slots, held by one exchange; released once."""

    __slots__ = ("_held", "_slots", "waited")

    def __init__(self, slots: asyncio.Semaphore, waited: bool) -> None:
        self._slots = slots
        self._held = True
        #: The call waited for this slot (its deadline may have been spent waiting).
        self.waited = waited

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


# -- the client ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Operation:
    name: str  # the carrier API's operationId
    method: str

    @property
    def write(self) -> bool:
        return self.method != "GET"

    @property
    def idempotent(self) -> bool:
        return self.method in ("GET", "PUT", "DELETE")

    @property
    def listing(self) -> bool:
        """A list of the account's records: its answer grows with the account, so its
        latency says little about the carrier's, and it always gets the whole timeout."""
        return self.name.startswith("list")


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or set(value) == {"."}:
        raise ValueError(f"refusing unsafe {what}: {value!r}")
    return value


def _check_endpoint_id(value: str) -> str:
    _check_id(value, "endpoint ID")
    if value.casefold() in _RESERVED_ENDPOINT_IDS:
        raise ValueError(f"refusing endpoint ID {value!r}: it names a sibling collection")
    return value


def _is_empty(record: Record) -> bool:
    return all(getattr(record, f.name) in (None, ()) for f in dataclasses.fields(record))


class BandwidthClient:
    """The carrier's twelve operations over one pooled ``httpx.AsyncClient``.

    ``breaker_failures``/``breaker_cooldown`` configure ``breaker`` (a ``CircuitBreaker``),
    ``retry_budget_ratio`` configures ``budget`` (a ``RetryBudget``); both are shared by
    every call of this client. ``max_connections`` caps the exchanges in flight,
    ``max_watched`` (default: as many) the abandoned writes watched beside them; the
    connection pool holds both.
    """

    def __init__(
        self,
        base_url: str,
        account_id: str,
        username: str,
        password: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        metrics: Metrics | None = None,
        max_connections: int = _DEFAULTS.upstream_max_connections,
        max_watched: int | None = None,
        breaker_failures: int = _DEFAULTS.breaker_failures,
        breaker_cooldown: float = _DEFAULTS.breaker_cooldown,
        retry_budget_ratio: float = _DEFAULTS.retry_budget_ratio,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.account_id = _check_id(account_id, "account ID")
        self.policy = policy
        self.metrics = metrics
        #: ``clock()`` of the last HTTP answer of any status from the carrier.
        self.last_answer_at: float | None = None
        #: Told of every write exchange abandoned at its attempt's timeout (see the module
        #: docstring), as ``on_abandoned(operation, record_sent, settled)``: the API's
        #: operation name, the record in the request (``None`` for a DELETE), and an
        #: awaitable that completes, never raising, once that exchange has ended. It is
        #: also told of a write whose caller was cancelled mid-exchange. Called on the
        #: event loop while the call goes on: it must not block, and an exception it
        #: raises is logged and ignored.
        self.on_abandoned: AbandonedHook | None = None
        #: ``clock()`` of the last answer that shows a working carrier (not a 5xx, not a
        #: refusal of our credentials), and of the last refusal of our credentials.
        self.last_healthy_at: float | None = None
        self.last_refusal_at: float | None = None
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown, clock=clock)
        self.budget = RetryBudget(retry_budget_ratio, clock=clock)
        self.timeouts = AttemptTimeouts(policy.timeout, policy.min_timeout)
        # Abandoned exchanges, held here so that they are not garbage-collected mid-flight.
        self._abandoned: set[asyncio.Task[_Exchange]] = set()
        self._max_watched = max(0, max_connections if max_watched is None else max_watched)
        # The settle windows of abandoned writes whose connection was closed (none watched).
        self._windows: set[asyncio.Task[None]] = set()
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._root = f"{self.base_url}/accounts/{quote(self.account_id, safe='')}/e911s"
        # Exchanges in flight, capped at the pool size: the rest wait here, in an O(1) queue,
        # not in httpcore's pool, whose request queue is rescanned on every assignment
        # (quadratic in the requests waiting for a connection).
        self._slots = asyncio.Semaphore(max(1, max_connections))
        pool = max(1, max_connections) + self._max_watched
        self._http = httpx.AsyncClient(
            transport=transport,
            auth=httpx.BasicAuth(username, password),
            headers={"Accept": "application/xml", "User-Agent": "dlr-gateway"},
            limits=httpx.Limits(
                max_connections=pool, max_keepalive_connections=max(1, max_connections)
            ),
            timeout=httpx.Timeout(policy.timeout),
            follow_redirects=False,
        )
        if metrics is not None:
            gauge = metrics.upstream_circuit_state
            # Read at scrape time: an open circuit turns half-open by the clock, not by a call.
            breaker = weakref.ref(self.breaker)

            def circuit_state() -> float:
                alive = breaker()
                return STATE_VALUES[alive.state] if alive is not None else 0.0

            gauge.set_function(circuit_state)
            timeouts = weakref.ref(self.timeouts)

            def attempt_timeout() -> float:
                alive = timeouts()
                return alive.timeout() if alive is not None else policy.timeout

            metrics.upstream_attempt_timeout.set_function(attempt_timeout)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
    ) -> BandwidthClient:
        """The client the settings describe.

        Refuses a plain-http carrier off loopback unless ``GATEWAY_UPSTREAM_ALLOW_INSECURE``
        (or sandbox mode, or an injected transport, which never leaves the process).
        """
        url = settings.bandwidth_base_url
        insecure_ok = settings.upstream_allow_insecure or settings.sandbox or transport is not None
        if url.startswith("http://") and not insecure_ok and not _is_loopback(url):
            raise ValueError(
                "BANDWIDTH_BASE_URL is plain http to a host that is not loopback;"
                " use https or set GATEWAY_UPSTREAM_ALLOW_INSECURE"
            )
        return cls(
            url,
            settings.bandwidth_account_id,
            settings.bandwidth_username,
            str(settings.bandwidth_password),
            transport=transport,
            policy=RetryPolicy.from_settings(settings),
            metrics=metrics,
            max_connections=settings.upstream_max_connections,
            breaker_failures=settings.breaker_failures,
            breaker_cooldown=settings.breaker_cooldown,
            retry_budget_ratio=settings.retry_budget_ratio,
        )

    def __repr__(self) -> str:
        return f"BandwidthClient(base_url={self.base_url!r}, account_id={self.account_id!r})"

    @property
    def abandoned(self) -> int:
        """Abandoned write exchanges still out (waiting for the carrier's late answer)."""
        return len(self._abandoned)

    async def wait_abandoned(self, grace: float | None = None) -> int:
        """Wait up to ``grace`` seconds for the abandoned exchanges to settle.

        For a graceful shutdown, before ``aclose()``; returns how many are still out.
        """
        pending = set(self._abandoned)
        if pending:
            await asyncio.wait(pending, timeout=grace)
        return self.abandoned

    async def aclose(self) -> None:
        """Cancel the abandoned exchanges still out, then close the connection pool."""
        pending = list(self._abandoned)
        for task in pending:
            task.cancel()
        if pending:
            log.info("closing: cancelling %d abandoned write(s) still out", len(pending))
        windows = list(self._windows)
        for window in windows:
            window.cancel()
        await asyncio.gather(*pending, *windows, return_exceptions=True)
        await self._http.aclose()

    async def __aenter__(self) -> BandwidthClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- endpoints ------------------------------------------------------------

    async def list_endpoints(self) -> EndpointListResponse:
        root = await self._call(_Operation("listEndpoints", "GET"), "")
        return self._read(EndpointListResponse, root, "listEndpoints")

    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint:
        if endpoint.endpoint_id is not None:
            _check_endpoint_id(endpoint.endpoint_id)
        return await self._create(
            _Operation("createEndpoint", "POST"), "", endpoint, endpoint.endpoint_id is not None
        )

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        path = self._endpoint_path(endpoint_id)
        root = await self._call(_Operation("getEndpoint", "GET"), path)
        return self._read(Endpoint, root, "getEndpoint")

    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint:
        path = self._endpoint_path(endpoint_id)
        if endpoint.endpoint_id not in (None, endpoint_id):
            raise ValueError("the endpoint's endpointId differs from the one in the path")
        sent = dataclasses.replace(endpoint, endpoint_id=endpoint_id)
        return await self._update(_Operation("updateEndpoint", "PUT"), path, sent)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._delete(_Operation("deleteEndpoint", "DELETE"), self._endpoint_path(endpoint_id))

    # -- locations --------------------------------------------------------------

    async def list_locations(self) -> LocationListResponse:
        root = await self._call(_Operation("listLocations", "GET"), "/locations")
        return self._read(LocationListResponse, root, "listLocations")

    async def create_location(self, location: Location) -> Location:
        if location.location_id is not None:
            _check_id(location.location_id, "location ID")
        return await self._create(
            _Operation("createLocation", "POST"),
            "/locations",
            location,
            location.location_id is not None,
        )

    async def get_location(self, location_id: str) -> Location:
        path = self._location_path(location_id)
        root = await self._call(_Operation("getLocation", "GET"), path)
        return self._read(Location, root, "getLocation")

    async def update_location(self, location_id: str, location: Location) -> Location:
        path = self._location_path(location_id)
        if location.location_id not in (None, location_id):
            raise ValueError("the location's locationId differs from the one in the path")
        sent = dataclasses.replace(location, location_id=location_id)
        return await self._update(_Operation("updateLocation", "PUT"), path, sent)

    async def delete_location(self, location_id: str) -> None:
        await self._delete(_Operation("deleteLocation", "DELETE"), self._location_path(location_id))

    # -- notification recipients ------------------------------------------------

    async def list_notification_recipients(self) -> NotificationRecipientListResponse:
        op = _Operation("listNotificationRecipients", "GET")
        root = await self._call(op, "/notificationRecipients")
        return self._read(NotificationRecipientListResponse, root, op.name)

    async def create_notification_recipient(
        self, recipient: NotificationRecipient
    ) -> NotificationRecipient:
        if recipient.id is not None:
            _check_id(recipient.id, "notification recipient ID")
        return await self._create(
            _Operation("createNotificationRecipient", "POST"),
            "/notificationRecipients",
            recipient,
            recipient.id is not None,
        )

    # -- the shapes of the operations ------------------------------------------

    def _endpoint_path(self, endpoint_id: str) -> str:
        return "/" + quote(_check_endpoint_id(endpoint_id), safe="")

    def _location_path(self, location_id: str) -> str:
        return "/locations/" + quote(_check_id(location_id, "location ID"), safe="")

    @staticmethod
    def _read(kind: type[R], root: ET.Element | None, operation: str) -> R:
        if root is None:
            raise UpstreamParseError(f"{operation}: the answer has no body", operation=operation)
        try:
            return codec.from_element(kind, root)
        except CodecError as exc:
            raise UpstreamParseError(f"{operation}: {exc}", operation=operation) from None

    async def _create(self, op: _Operation, path: str, record: R, has_id: bool) -> R:
        root = await self._call(op, path, record, retryable=has_id, conflict_is_success=has_id)
        return self._written(op, root, record)

    async def _update(self, op: _Operation, path: str, record: R) -> R:
        return self._written(op, await self._call(op, path, record), record)

    async def _delete(self, op: _Operation, path: str) -> None:
        await self._call(op, path, not_found_is_success=True)

    def _written(self, op: _Operation, root: ET.Element | None, sent: R) -> R:
        """The carrier's copy of a written record; the record sent when it answers none."""
        if root is None:
            return sent
        answered = self._read(type(sent), root, op.name)
        return sent if _is_empty(answered) else answered

    # -- one call: attempts, retries, the deadline -------------------------------

    async def _call(
        self,
        op: _Operation,
        path: str,
        record: Record | None = None,
        *,
        retryable: bool | None = None,
        conflict_is_success: bool = False,
        not_found_is_success: bool = False,
    ) -> ET.Element | None:
        """Run one operation to its end; the parsed answer, or ``None`` for an empty one.

        ``conflict_is_success``/``not_found_is_success``: a 409 (create) or 404 (delete)
        answering a retry, after an attempt that may have been applied, means that
        attempt succeeded.

        An open circuit refuses the first attempt with ``CircuitOpenError``; a retry it
        (or an empty retry budget) refuses ends the call with the last attempt's error.
        """
        body = codec.encode(record) if record is not None else None
        may_retry = op.idempotent if retryable is None else retryable
        policy = self.policy
        breaker = self.breaker
        deadline_at = self._clock() + policy.deadline
        maybe_applied = False  # an earlier attempt may have reached the carrier and applied
        attempt = 0
        last: UpstreamError | None = None
        while True:
            attempt += 1
            remaining = deadline_at - self._clock()
            if remaining <= 0:
                raise self._final(last, op, maybe_applied)
            if breaker.state == "open":
                raise self._refused(op, last, maybe_applied)
            lease = await self._lease(op, remaining)
            if lease is None:
                raise self._final(last, op, maybe_applied)
            trial = breaker.state != "closed"
            if not breaker.allow():
                lease.release()
                raise self._refused(op, last, maybe_applied)
            if attempt == 1:
                self.budget.deposit()
            whole = min(policy.timeout, deadline_at - self._clock())
            budget = whole if op.listing else min(whole, self.timeouts.timeout())
            # A timeout is the carrier's silence when the attempt had the policy's whole
            # timeout, or the policy's deadline alone cut it (a first attempt that did not
            # wait); not when it was adaptive, or cut short by a wait for a slot.
            heard = budget >= policy.timeout or (
                budget == whole and attempt == 1 and not lease.waited
            )
            try:
                try:
                    response, root = await self._attempt(
                        op, path, body, record, budget, lease, trial=trial, silence_counts=heard
                    )
                finally:
                    # The exchange has given it back (answered, or abandoned): unless it
                    # never started, which this makes sure of. Releasing twice is a no-op.
                    lease.release()
                status = response.status_code
                if 200 <= status < 300:
                    if root is None or codec.response_status(root) is None:
                        return root
                    raise _Failed(_answer_error(response, root, op.name, write=op.write), None)
                if attempt > 1 and maybe_applied:
                    if conflict_is_success and status == 409:
                        log.info("%s: 409 on a retry, the earlier attempt took effect", op.name)
                        return None
                    if not_found_is_success and status == 404:
                        log.info("%s: 404 on a retry, the earlier attempt took effect", op.name)
                        return None
                error = _answer_error(response, root, op.name, write=op.write)
                reason = "5xx" if status >= 500 else "429" if status == 429 else None
                raise _Failed(error, reason)
            except _Failed as failed:
                last, reason = failed.error, failed.reason
            maybe_applied = maybe_applied or last.ambiguous
            if not may_retry or reason is None or attempt >= policy.max_attempts:
                raise self._final(last, op, maybe_applied)
            retry_after = getattr(last, "retry_after", None)
            if retry_after is not None:
                wait = float(retry_after)
            else:
                cap = min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))
                wait = self._random() * cap
            if self._clock() + wait >= deadline_at:
                # Waiting would spend the whole deadline: give up now, not at its end.
                raise self._final(last, op, maybe_applied)
            if self.breaker.state == "open":  # this attempt's verdict may have opened it
                log.info(
                    "%s: attempt %d failed (%s), the circuit is open", op.name, attempt, reason
                )
                raise self._final(last, op, maybe_applied)
            if not self.budget.withdraw():
                log.info(
                    "%s: attempt %d failed (%s), the retry budget is spent",
                    op.name,
                    attempt,
                    reason,
                )
                raise self._final(last, op, maybe_applied)
            if self.metrics is not None:
                self.metrics.upstream_retries.labels(op.name, reason).inc()
            log.warning(
                "%s: attempt %d failed (%s), retrying in %.3fs", op.name, attempt, reason, wait
            )
            await self._sleep(wait)

    def _refused(
        self, op: _Operation, last: UpstreamError | None, maybe_applied: bool
    ) -> UpstreamError:
        """The error of an attempt the circuit does not let out: the last attempt's, if any."""
        if last is not None:
            log.info("%s: the circuit is open, not retrying", op.name)
            return self._final(last, op, maybe_applied)
        wait = self.breaker.retry_after()
        return CircuitOpenError(
            f"{op.name}: the circuit to the carrier is open after repeated failures;"
            f" no request sent (trial call in {wait:.1f}s)",
            operation=op.name,
            retry_after=wait,
        )

    async def _lease(self, op: _Operation, wait: float) -> _Lease | None:
        """A connection slot, or ``None`` when none came free within ``wait`` seconds."""
        slots = self._slots
        if slots.locked():
            started = self._clock()
            try:
                async with asyncio.timeout(wait):
                    await slots.acquire()
            except TimeoutError:
                log.warning(
                    "%s: no connection slot came free within the call's deadline; nothing was sent",
                    op.name,
                )
                return None
            finally:
                if self.metrics is not None:
                    self.metrics.upstream_slot_wait.observe(max(0.0, self._clock() - started))
            return _Lease(slots, waited=True)
        await slots.acquire()
        return _Lease(slots, waited=False)

    @staticmethod
    def _final(last: UpstreamError | None, op: _Operation, maybe_applied: bool) -> UpstreamError:
        if last is None:
            return UpstreamTimeout(
                f"{op.name}: the deadline passed before a request was sent", operation=op.name
            )
        if op.write and maybe_applied:
            last.ambiguous = True  # an earlier attempt's effect is still unknown
        return last

    async def _attempt(
        self,
        op: _Operation,
        path: str,
        body: bytes | None,
        record: Record | None,
        budget: float,
        lease: _Lease,
        *,
        trial: bool = False,
        silence_counts: bool = True,
    ) -> tuple[httpx.Response, ET.Element | None]:
        """One HTTP exchange on the slot ``lease`` holds: the answer and its parsed body
        (``None`` when empty).

        Raises ``_Failed`` for timeouts, connection failures and an unreadable 2xx body.
        Tells the circuit breaker what the attempt says about the carrier (``trial``: this
        attempt is the half-open circuit's trial); a timeout only with ``silence_counts``
        (see the module docstring).
        """
        headers = {"Content-Type": "application/xml"} if body is not None else None
        if op.write:
            # The exchange may outlive the attempt (abandoned, watched to its end), but
            # waiting for a connection may not: past the budget, nothing was sent.
            limit = max(self.policy.settle_timeout, budget)
            timeout = httpx.Timeout(limit, connect=budget, pool=budget)
        else:
            limit = budget
            timeout = httpx.Timeout(budget)
        request = self._http.build_request(
            op.method, self._root + path, content=body, headers=headers, timeout=timeout
        )
        started = self._clock()
        outcome = "error"
        verdict: bool | None = None  # the carrier is alive (True), dead or sick (False)
        try:
            with _translate(op.name, write=op.write):
                if op.write:
                    response, data = await self._watched(
                        op, request, record, budget, limit, started, lease
                    )
                else:
                    response, data = await self._exchange(request, limit, lease)
            outcome = str(response.status_code)
            if not op.listing:
                self.timeouts.answered(max(0.0, self._clock() - started))
            verdict = response.status_code < 500  # an answer, even a 4xx: the carrier lives
            if response.status_code in (401, 403):
                self.last_refusal_at = self._clock()
            elif verdict:
                self.last_healthy_at = self._clock()
        except _Failed as failed:
            timed_out = isinstance(failed.error, UpstreamTimeout)
            outcome = "timeout" if timed_out else "error"
            if timed_out and not op.listing:
                self.timeouts.timed_out()
            if (timed_out and silence_counts) or failed.reason == "connection":
                verdict = False
            raise
        finally:
            if verdict is True:
                self.breaker.success()
            elif verdict is False:
                self.breaker.failure()
            elif trial:
                self.breaker.release()  # cancelled, or refused before sending
            if self.metrics is not None:
                self.metrics.upstream_request_duration.labels(op.name, outcome).observe(
                    max(0.0, self._clock() - started)
                )
        return response, self._parse(response, data, op)

    async def _exchange(self, request: httpx.Request, limit: float, lease: _Lease) -> _Exchange:
        """Send, read the whole answer, release the connection and the slot; at most
        ``limit`` seconds.

        httpx's timeouts bound each network step; ``limit`` bounds the whole exchange, and
        also covers transports that have none (ASGITransport).
        """
        try:
            async with asyncio.timeout(limit):
                response = await self._http.send(request, stream=True)
                try:
                    self.last_answer_at = self._clock()
                    data = await self._read_body(response)
                finally:
                    await response.aclose()
        finally:
            lease.release()
        return response, data

    async def _watched(
        self,
        op: _Operation,
        request: httpx.Request,
        record: Record | None,
        budget: float,
        limit: float,
        started: float,
        lease: _Lease,
    ) -> _Exchange:
        """A write's exchange, waited for ``budget`` seconds but never cancelled by us
        while it is watched.

        Past the budget (or when the caller is cancelled) the exchange is abandoned to
        ``on_abandoned`` and goes on for up to ``limit`` seconds; the attempt then fails
        with a ``TimeoutError``, which ``_translate`` makes an ambiguous timeout.
        """
        task = asyncio.get_running_loop().create_task(
            self._exchange(request, limit, lease), name=f"bandwidth {op.name}"
        )
        try:
            await asyncio.wait((task,), timeout=budget)  # neither raises nor cancels the task
        except asyncio.CancelledError:
            if not task.done():
                self._abandon(op, record, task, started, lease)
            elif not task.cancelled():
                task.exception()  # it ended as we were cancelled: nothing left to watch
            raise
        if task.done():
            return task.result()
        self._abandon(op, record, task, started, lease)
        raise TimeoutError(f"no answer within {budget:g}s")

    def _abandon(
        self,
        op: _Operation,
        record: Record | None,
        task: asyncio.Task[_Exchange],
        started: float,
        lease: _Lease,
    ) -> None:
        lease.release()  # the next attempt need not wait for this one's answer
        if len(self._abandoned) < self._max_watched:
            settled = _Settled(task)
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
            task.add_done_callback(lambda done: self._settled(op, started, done))
            log.info("%s: no answer in time; the exchange goes on, watched", op.name)
        else:
            task.cancel()
            task.add_done_callback(_retrieved)
            wait = max(0.0, self.policy.settle_timeout - (self._clock() - started))
            window = asyncio.get_running_loop().create_task(
                asyncio.sleep(wait), name=f"bandwidth {op.name} settle window"
            )
            self._windows.add(window)
            window.add_done_callback(self._windows.discard)
            settled = _Settled(window)
            log.warning(
                "%s: no answer in time, and %d abandoned writes are already watched: this"
                " one's connection is closed, and it counts as settled in %.1fs",
                op.name,
                len(self._abandoned),
                wait,
            )
        hook = self.on_abandoned
        if hook is not None:
            try:
                hook(op.name, record, settled)
            except Exception:
                log.exception("%s: the on_abandoned hook failed", op.name)

    def _settled(self, op: _Operation, started: float, task: asyncio.Task[_Exchange]) -> None:
        """Record how an abandoned exchange ended (and retrieve its exception).

        Its duration, from the start of the attempt, is observed as status ``late`` (the
        carrier answered, any status) or ``late_error`` (no answer: the connection failed
        or ``settle_timeout`` passed); one cancelled by ``aclose()`` is not observed.
        """
        if task.cancelled():
            log.info("%s: an abandoned exchange was cancelled before it settled", op.name)
            return
        elapsed = max(0.0, self._clock() - started)
        error = task.exception()
        if error is None:
            status = task.result()[0].status_code
            outcome = "late"
            log.warning(
                "%s: an abandoned write was answered late, %.3fs after it was sent: HTTP %d",
                op.name,
                elapsed,
                status,
            )
        else:
            outcome = "late_error"
            log.info(
                "%s: an abandoned write ended without an answer (%s)",
                op.name,
                type(error).__name__,
            )
        if self.metrics is not None:
            self.metrics.upstream_request_duration.labels(op.name, outcome).observe(elapsed)

    @staticmethod
    async def _read_body(response: httpx.Response) -> bytes | None:
        """The body, or ``None`` when it is larger than the codec would read."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > codec.MAX_XML_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _parse(response: httpx.Response, data: bytes | None, op: _Operation) -> ET.Element | None:
        ok = 200 <= response.status_code < 300
        if data is not None and not data.strip():
            return None
        try:
            if data is None:
                raise CodecError(f"the body exceeds {codec.MAX_XML_BYTES} bytes")
            return codec.parse(data)
        except CodecError as exc:
            if not ok:
                return None  # an error answer says enough by its status
            error = UpstreamParseError(
                f"{op.name}: unreadable answer: {exc}",
                operation=op.name,
                status=response.status_code,
            )
            raise _Failed(error, None) from None


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Retrieve a task's exception, so that one nobody awaits is not logged as lost."""
    if not task.cancelled():
        task.exception()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
