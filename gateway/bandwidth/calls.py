"""One call to the carrier: attempts, retries, the deadline, the breaker and the budget.
What is retried, when a write's error is ambiguous, and where errors are translated is in
docs/architecture.md ("One call to the carrier")."""

from __future__ import annotations

import asyncio
import logging
import random as _random
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx

from gateway.bandwidth import codec
from gateway.bandwidth.errors import (
    UpstreamError,
    UpstreamParseError,
    UpstreamTimeout,
)
from gateway.bandwidth.models import (
    Record,
)
from gateway.bandwidth.resilience import (
    STATE_VALUES,
    AttemptTimeouts,
    CircuitBreaker,
    CircuitOpenError,
    RetryBudget,
)
from gateway.bandwidth.upstreams import is_background, time_left
from gateway.transport import transport as aiohttp_transport

if TYPE_CHECKING:
    from gateway.metrics import Metrics
from gateway.bandwidth.exchanges import (
    DEFAULT_POLICY,
    AbandonedHook,
    Body,
    Exchange,
    Exchanges,
    Lease,
    Operation,
    RetryPolicy,
)
from gateway.bandwidth.failures import Failed, answer_error, translate
from gateway.settings import DEFAULTS

log = logging.getLogger("gateway.bandwidth.client")


#: Path segments the client will put in a URL: no ``/``, no ``%``, no spaces, at most 64.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._~@:+=-]{1,64}")


class _AnswerCookies(httpx.Cookies):
    """httpx's cookie jar, which reads an answer only when it sets a cookie: reading one
    that sets none builds the standard library's views of the request and the answer (a
    URL parse and header copies on every exchange) to find no ``Set-Cookie`` header and
    keep nothing (docs/benchmarks.md, "The report paths' CPU"). An answer that sets one is
    read as httpx reads it."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class _Http(httpx.AsyncClient):
    """``httpx.AsyncClient`` with ``_AnswerCookies`` for its cookies."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._answer_cookies = _AnswerCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._answer_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._answer_cookies = _AnswerCookies(cookies)


def check_id(value: str, what: str) -> str:
    """``value`` when it is safe as a URL path segment; ``ValueError`` otherwise."""
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or set(value) == {"."}:
        raise ValueError(f"refusing unsafe {what}: {value!r}")
    return value


def answered_for(asked: str, answered: str | None, operation: str) -> None:
    """``UpstreamParseError`` when a read's answer names another record than the one asked
    for (the carrier's mix-up, or a cache's before it); an answer naming none is taken as
    the one asked for."""
    if answered is not None and answered != asked:
        raise UpstreamParseError(
            f"{operation}: asked for {asked[:80]!r}, the carrier answered {answered[:80]!r}",
            operation=operation,
        )


class CarrierCalls(Exchanges):
    """Calls to the carrier over one pooled ``httpx.AsyncClient``, sharing one ``breaker``
    and one retry ``budget``. ``max_connections`` caps the exchanges in flight,
    ``max_watched`` (default: as many) the abandoned writes watched beside them; the
    connection pool holds both."""

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
        max_connections: int = DEFAULTS.upstream_max_connections,
        max_watched: int | None = None,
        breaker_failures: int = DEFAULTS.breaker_failures,
        breaker_cooldown: float = DEFAULTS.breaker_cooldown,
        retry_budget_ratio: float = DEFAULTS.retry_budget_ratio,
        on_abandoned: AbandonedHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.account_id = check_id(account_id, "account ID")
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
        self.on_abandoned = on_abandoned
        #: ``clock()`` of the last answer that shows a working carrier (not a 5xx, not a
        #: refusal of our credentials), and of the last refusal of our credentials.
        self.last_healthy_at: float | None = None
        self.last_refusal_at: float | None = None
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown, clock=clock)
        self.budget = RetryBudget(retry_budget_ratio, clock=clock)
        self.timeouts = AttemptTimeouts(policy.timeout, policy.min_timeout)
        # Abandoned exchanges, held here so that they are not garbage-collected mid-flight.
        self._abandoned: set[asyncio.Task[Exchange]] = set()
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
        # Background work's share of them (``in_background``): the rest stay for reports.
        self._background_slots = asyncio.Semaphore(max(1, max_connections // 2))
        pool = max(1, max_connections) + self._max_watched
        limits = httpx.Limits(
            max_connections=pool, max_keepalive_connections=max(1, max_connections)
        )
        self._http = _Http(
            transport=transport or aiohttp_transport(limits),
            auth=httpx.BasicAuth(username, password),
            headers={"Accept": "application/xml", "User-Agent": "dlr-gateway"},
            limits=limits,
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

    # -- the wire format: XML here, JSON for the v2 API's client -----------------

    content_type = "application/xml"

    def _encode(self, op: Operation, record: Record) -> bytes:
        """The request body that carries ``record`` for ``op``."""
        return codec.encode(record)

    def _refusal(self, response: httpx.Response, root: Body, op: Operation) -> UpstreamError | None:
        """The error a 2xx answer's body carries, if any: a ``ResponseStatus`` with an error
        code. One without a code refuses nothing (an empty one is no error at all); one with
        words but no code says nothing certain, so it is an unreadable answer: for a write,
        uncertain (checked and repaired), never a refusal that undoes the device's report."""
        found = None if root is None else codec.response_status(root)
        if found is None:
            return None
        if found.code is not None:
            return answer_error(response, root, op.name, write=op.write)
        if found.description is None:
            return None  # <ResponseStatus/>, or one with an empty <ErrorCode/>
        return UpstreamParseError(
            f"{op.name}: HTTP {response.status_code} with a ResponseStatus but no error code"
            f" ({found.description[:200]})",
            operation=op.name,
            status=response.status_code,
            ambiguous=op.write,
        )

    def _answer_error(self, response: httpx.Response, root: Body, op: Operation) -> UpstreamError:
        """The error a non-2xx answer stands for."""
        return answer_error(response, root, op.name, write=op.write)

    # -- one call: attempts, retries, the deadline -------------------------------

    async def _call(
        self,
        op: Operation,
        path: str,
        record: Record | None = None,
        *,
        retryable: bool | None = None,
        conflict_is_success: bool = False,
        not_found_is_success: bool = False,
    ) -> Body:
        """Run one operation to its end; the parsed answer, or ``None`` for an empty one.
        ``conflict_is_success``/``not_found_is_success``: a 409 (create) or 404 (delete)
        answering a retry of an attempt that may have been applied means it succeeded. An
        open circuit refuses the first attempt (``CircuitOpenError``); a retry it or an empty
        retry budget refuses ends the call with the last attempt's error."""
        body = self._encode(op, record) if record is not None else None
        may_retry = op.idempotent if retryable is None else retryable
        policy = self.policy
        breaker = self.breaker
        # The caller's own deadline (a report's, ``answer_by``) comes first: a call still
        # waiting for a slot then fails as unsent, rather than being cancelled unawares.
        left = time_left()
        ours = left is not None and left < policy.deadline  # the caller's deadline is nearer
        deadline_at = self._clock() + (left if ours and left is not None else policy.deadline)
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
            # The adaptive timeout gives up early so that a retry finds the carrier in time;
            # an attempt no retry can follow (a write not retried, the last attempt, the
            # budget spent) gets the whole timeout: cut short, a slow carrier's success
            # would become a failure, and a write's an uncertain one.
            last_chance = not may_retry or attempt >= policy.max_attempts
            impatient = not (op.listing or last_chance or self.budget.tokens < 1)
            budget = min(whole, self.timeouts.timeout()) if impatient else whole
            # A timeout is the carrier's silence when the attempt had the policy's whole
            # timeout, or the policy's deadline alone cut it (a first attempt that did not
            # wait); not when it was adaptive, or cut short by a wait for a slot or by the
            # caller's own deadline.
            heard = budget >= policy.timeout or (
                budget == whole and attempt == 1 and not lease.waited and not ours
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
                    refused = self._refusal(response, root, op)
                    if refused is None:
                        return root
                    raise Failed(refused, None)
                if attempt > 1 and maybe_applied:
                    if conflict_is_success and status == 409:
                        log.info("%s: 409 on a retry, the earlier attempt took effect", op.name)
                        return None
                    if not_found_is_success and status == 404:
                        log.info("%s: 404 on a retry, the earlier attempt took effect", op.name)
                        return None
                error = self._answer_error(response, root, op)
                reason = {429: "429", 408: "timeout"}.get(status, "5xx" if status >= 500 else None)
                raise Failed(error, reason)
            except Failed as failed:
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
        self, op: Operation, last: UpstreamError | None, maybe_applied: bool
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

    async def _lease(self, op: Operation, wait: float) -> Lease | None:
        """A connection slot, or ``None`` when none came free within ``wait`` seconds.
        Background work takes one of its share of the slots first."""
        gates = (self._background_slots, self._slots) if is_background() else (self._slots,)
        if not any(gate.locked() for gate in gates):
            for gate in gates:
                await gate.acquire()  # free: taken at once
            return Lease(gates, waited=False)
        started = self._clock()
        held: list[asyncio.Semaphore] = []
        try:
            async with asyncio.timeout(wait):
                for gate in gates:
                    await gate.acquire()
                    held.append(gate)
        except BaseException as exc:
            for gate in held:
                gate.release()
            if not isinstance(exc, TimeoutError):
                raise
            log.warning(
                "%s: no connection slot came free within the call's deadline; nothing was sent",
                op.name,
            )
            return None
        finally:
            if self.metrics is not None:
                self.metrics.upstream_slot_wait.observe(max(0.0, self._clock() - started))
        return Lease(gates, waited=True)

    def _credentials_refused(self, op: Operation, status: int) -> None:
        """The carrier refused the gateway's credentials: an error logged once per outage (the
        first refusal since it last accepted them), not once per call or device."""
        accepted = self.last_healthy_at
        if self.last_refusal_at is None or (
            accepted is not None and accepted > self.last_refusal_at
        ):
            log.error(
                "%s: the carrier refuses the gateway's credentials (HTTP %d): check"
                " BANDWIDTH_USERNAME, BANDWIDTH_PASSWORD and the account's roles. Until it"
                " accepts them, reports fail (502), repairs wait and imports stop",
                op.name,
                status,
            )
        self.last_refusal_at = self._clock()

    @staticmethod
    def _final(last: UpstreamError | None, op: Operation, maybe_applied: bool) -> UpstreamError:
        if last is None:
            return UpstreamTimeout(
                f"{op.name}: the deadline passed before a request was sent", operation=op.name
            )
        if op.write and maybe_applied:
            last.ambiguous = True  # an earlier attempt's effect is still unknown
        return last

    async def _attempt(
        self,
        op: Operation,
        path: str,
        body: bytes | None,
        record: Record | None,
        budget: float,
        lease: Lease,
        *,
        trial: bool = False,
        silence_counts: bool = True,
    ) -> tuple[httpx.Response, Body]:
        """One HTTP exchange on the slot ``lease`` holds: the answer and its parsed body
        (``None`` when empty); ``Failed`` for timeouts, connection failures and an unreadable
        2xx body. The circuit breaker is told what it says of the carrier (``trial``: the
        half-open circuit's trial; a timeout only with ``silence_counts``)."""
        headers = {"Content-Type": self.content_type} if body is not None else None
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
            with translate(op.name, write=op.write):
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
                self._credentials_refused(op, response.status_code)
            elif verdict:
                self.last_healthy_at = self._clock()
        except Failed as failed:
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
                self.metrics.upstream_done(op.name, outcome, max(0.0, self._clock() - started))
        return response, self._parse(response, data, op)
