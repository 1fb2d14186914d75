"""One exchange with the carrier: connection slots, abandoned writes, reading the answer.
A write past its attempt's budget is abandoned but watched to its end, never cancelled; why,
and how slots are counted, is in docs/architecture.md ("One exchange with the carrier")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import httpx

from gateway.bandwidth import codec
from gateway.bandwidth.errors import (
    CodecError,
    UpstreamParseError,
)
from gateway.bandwidth.models import (
    Record,
)
from gateway.settings import DEFAULTS, Settings

if TYPE_CHECKING:
    from gateway.metrics import Metrics

from gateway.bandwidth.failures import Failed

log = logging.getLogger("gateway.bandwidth.client")


#: ``on_abandoned(operation, record_sent, settled)``; see ``BandwidthClient.on_abandoned``.
AbandonedHook: TypeAlias = Callable[[str, Record | None, Awaitable[None]], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one call tries. Waits are ``random() * min(backoff_max, backoff_base * 2**n)``."""

    max_attempts: int = DEFAULTS.upstream_max_attempts  # for a retryable call
    timeout: float = DEFAULTS.upstream_timeout  # per attempt: ``AttemptTimeouts``' ceiling
    deadline: float = DEFAULTS.upstream_deadline  # per call, all attempts and waits included
    backoff_base: float = DEFAULTS.upstream_backoff_base
    backoff_max: float = DEFAULTS.upstream_backoff_max
    #: How long a write abandoned at its attempt's timeout is still watched for an answer.
    settle_timeout: float = DEFAULTS.upstream_settle_timeout
    #: The least an adaptive attempt timeout may be (``AttemptTimeouts``' floor).
    min_timeout: float = DEFAULTS.upstream_min_timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy the ``GATEWAY_UPSTREAM_*`` settings describe: each field is the
        setting ``upstream_<field>``."""
        return cls(**{f.name: getattr(settings, f"upstream_{f.name}") for f in fields(cls)})

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

Exchange: TypeAlias = tuple[httpx.Response, bytes | None]
#: An answer's parsed body: an XML element (JSON for the v2 API's client), ``None`` when empty.
Body: TypeAlias = Any


class Settled:
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


class Lease:
    """One of the client's connection slots (and, for background work, one of its share),
    held by one exchange; released once."""

    __slots__ = ("_gates", "_held", "waited")

    def __init__(self, gates: tuple[asyncio.Semaphore, ...], waited: bool) -> None:
        self._gates = gates
        self._held = True
        #: The call waited for this slot (its deadline may have been spent waiting).
        self.waited = waited

    def release(self) -> None:
        if self._held:
            self._held = False
            for gate in self._gates:
                gate.release()


@dataclass(frozen=True, slots=True)
class Operation:
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


def retrieved(task: asyncio.Task[Any]) -> None:
    """Retrieve a task's exception, so that one nobody awaits is not logged as lost."""
    if not task.cancelled():
        task.exception()


class Exchanges:
    """The exchanges of one client: its slots, its watched abandoned writes, its pool.

    ``CarrierCalls.__init__`` sets every attribute declared here.
    """

    policy: RetryPolicy
    metrics: Metrics | None
    on_abandoned: AbandonedHook | None
    last_answer_at: float | None
    _http: httpx.AsyncClient
    _clock: Callable[[], float]
    _abandoned: set[asyncio.Task[Exchange]]
    _windows: set[asyncio.Task[None]]
    _max_watched: int

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

    async def _exchange(self, request: httpx.Request, limit: float, lease: Lease) -> Exchange:
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
        op: Operation,
        request: httpx.Request,
        record: Record | None,
        budget: float,
        limit: float,
        started: float,
        lease: Lease,
    ) -> Exchange:
        """A write's exchange, waited for ``budget`` seconds but never cancelled by us
        while it is watched.

        Past the budget (or when the caller is cancelled) the exchange is abandoned to
        ``on_abandoned`` and goes on for up to ``limit`` seconds; the attempt then fails
        with a ``TimeoutError``, which ``translate`` makes an ambiguous timeout.
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
        op: Operation,
        record: Record | None,
        task: asyncio.Task[Exchange],
        started: float,
        lease: Lease,
    ) -> None:
        lease.release()  # the next attempt need not wait for this one's answer
        if len(self._abandoned) < self._max_watched:
            settled = Settled(task)
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
            task.add_done_callback(lambda done: self._settled(op, started, done))
            log.info("%s: no answer in time; the exchange goes on, watched", op.name)
        else:
            task.cancel()
            task.add_done_callback(retrieved)
            wait = max(0.0, self.policy.settle_timeout - (self._clock() - started))
            window = asyncio.get_running_loop().create_task(
                asyncio.sleep(wait), name=f"bandwidth {op.name} settle window"
            )
            self._windows.add(window)
            window.add_done_callback(self._windows.discard)
            settled = Settled(window)
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

    def _settled(self, op: Operation, started: float, task: asyncio.Task[Exchange]) -> None:
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
            self.metrics.upstream_done(op.name, outcome, elapsed)

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
    def _decode(data: bytes) -> Body:
        """A body's parsed form (``CodecError`` when unreadable): XML here."""
        return codec.parse(data)

    @classmethod
    def _parse(cls, response: httpx.Response, data: bytes | None, op: Operation) -> Body:
        ok = 200 <= response.status_code < 300
        if data is not None and not data.strip():
            return None
        try:
            if data is None:
                raise CodecError(f"the body exceeds {codec.MAX_XML_BYTES} bytes")
            return cls._decode(data)
        except CodecError as exc:
            if not ok:
                return None  # an error answer says enough by its status
            # A write's 2xx says the carrier took it, whatever its body: uncertain, so the
            # write is checked and repaired, never undone as if refused.
            error = UpstreamParseError(
                f"{op.name}: unreadable answer: {exc}",
                operation=op.name,
                status=response.status_code,
                ambiguous=op.write,
            )
            raise Failed(error, None) from None
