"""The delivery worker: sends the outbox's due deliveries, at least once, with backoff, in
one lane per kind of target, under leases shared by every replica (docs/architecture.md,
"Events, and the process that delivers them")."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from gateway import __version__
from gateway.concurrency import cancel
from gateway.events import email
from gateway.events.hand import Hand, LaneWake
from gateway.events.recipients import RecipientsUnavailable
from gateway.events.signing import signed_headers
from gateway.events.targets import CheckedResolver, RefusedAddress, host_problem
from gateway.metrics import Metrics
from gateway.store.deliveries import (
    CARRIER_EMAIL_TARGET,
    EMAIL_TARGETS,
    LANES,
    WEBHOOK_LANE,
    Claimed,
    Outcome,
    Webhook,
    lane_of,
)
from gateway.store.outbox import OutboxStore

log = logging.getLogger("gateway.events")

#: Seconds between two updates of the outbox gauges (a count over the pending deliveries).
GAUGE_INTERVAL = 5.0
#: Bytes of a receiver's answer read (and discarded) so its connection can be reused; the
#: connection of a longer answer is closed instead.
DRAIN_BYTES = 65_536
#: Schemes a webhook URL may have.
WEBHOOK_SCHEMES = ("https", "http")
#: Seconds a worker waits after a wake before it claims: the deliveries of the events
#: written meanwhile go out in the same claim and the same ``finish``, not one by one.
WAKE_LINGER = 0.05


class AttemptFailed(Exception):
    def __init__(self, reason: str, status: int | None = None, *, final: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        #: No later attempt can succeed: the delivery fails now rather than at its expiry.
        self.final = final


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base * 2**attempt`` seconds, at most ``cap``, each scaled by a random 0.5 to 1."""

    base: float = 5.0
    cap: float = 3600.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        full = min(self.cap, self.base * 2.0 ** min(attempt, 62))
        return full * (0.5 + rand() / 2)


class Wake:
    """Wakes every lane of a worker (``set``); each lane waits for its own event."""

    def __init__(self) -> None:
        self.lanes = {lane: LaneWake() for lane in LANES}

    def set(self) -> None:
        for event in self.lanes.values():
            event.set()


class DeliveryReport(Protocol):
    """Where a worker's figures go: the metrics, or the pipe to the serving process."""

    def counted(self, event_type: str, channel: str, result: str, count: int = 1) -> None:
        """Delivery attempts' outcome (``delivered``, ``retry`` or ``failed``)."""

    def backlog(self, depth: int, oldest: float) -> None:
        """The pending deliveries: how many, and the oldest one's age in seconds."""


@dataclass(frozen=True, slots=True)
class MetricsReport:
    """A worker's figures as the gateway's metrics."""

    metrics: Metrics

    def counted(self, event_type: str, channel: str, result: str, count: int = 1) -> None:
        self.metrics.event_deliveries.labels(event_type, channel, result).inc(count)

    def backlog(self, depth: int, oldest: float) -> None:
        self.metrics.outbox_pending.set(depth)
        self.metrics.outbox_oldest_age.set(oldest)


@dataclass(eq=False)
class DeliveryWorker:
    """Attempts ``concurrency`` due deliveries at a time in each lane (``LANES``: each email
    target's, the webhooks'), at most ``per_subscription`` of them to one subscription, with
    up to ``batch`` in hand; the room the ended attempts free is claimed again at once."""

    outbox: OutboxStore
    report: DeliveryReport
    owner: str
    _: KW_ONLY
    smtp: email.SmtpConfig | None = None
    allowed_hosts: tuple[str, ...] = ()
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float = 10.0
    poll: float = 1.0
    batch: int = 20
    concurrency: int = 8
    #: The most attempts in flight to one subscription: a receiver that hangs holds these
    #: of the webhook lane's slots, never all of them.
    per_subscription: int = 4
    linger: float = WAKE_LINGER
    send_email: Callable[[email.SmtpConfig, str], Awaitable[None]] = email.send
    #: The carrier's notification recipients' addresses (``email:carrier`` deliveries).
    carrier_recipients: Callable[[], Awaitable[tuple[str, ...]]] | None = None
    #: Whether this worker reports the outbox's backlog (a delivery process does not: the
    #: serving process reads it, so that it is current even while no child runs).
    gauges: bool = True
    #: Set when new events are written: deliver them now rather than at the next poll.
    wake: Wake = field(default_factory=Wake, init=False)
    _slots: dict[str, asyncio.Semaphore] = field(init=False)
    #: The worker's own HTTP client (``webhook_client``), opened at its first POST.
    _http: aiohttp.ClientSession | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _gauged_at: float = field(default=-GAUGE_INTERVAL, init=False)

    def __post_init__(self) -> None:
        self._slots = {lane: asyncio.Semaphore(self.concurrency) for lane in LANES}

    @property
    def lease(self) -> float:
        """Long enough for every attempt of one lane's batch (``concurrency`` at a time);
        a killed replica's claims come back to the others after it."""
        return math.ceil(self.batch / self.concurrency) * self.timeout * 3 + 5.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="event-delivery")

    async def aclose(self) -> None:
        """Stop; the attempts given up are due again at once (their leases released)."""
        await cancel(self._task)
        try:
            async with asyncio.timeout(self.timeout):
                await self.outbox.release(self.owner)
        except Exception as exc:  # their leases end by themselves
            log.warning("delivery leases not released", extra={"error": type(exc).__name__})
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as lanes:
            for lane in LANES:
                lanes.create_task(self._lane(lane), name=f"event-delivery-{lane}")

    async def _lane(self, lane: str) -> None:
        """Keep up to ``batch`` deliveries in hand, ``concurrency`` of them in flight: the
        attempts that end together are recorded in one ``finish`` and the room they free is
        taken in one claim, which leaves a subscription with ``per_subscription`` in hand; a
        slow attempt holds back no other subscription's."""
        wake = self.wake.lanes[lane]
        bounded = lane == WEBHOOK_LANE
        due = True  # a claim may find deliveries
        async with asyncio.TaskGroup() as attempts:
            hand = Hand(
                lambda item: self._attempt(item, item.webhook),
                attempts.create_task,
                self.per_subscription if bounded else self.concurrency,
            )
            while True:
                if due:
                    wake.clear()  # the claim sees every event written before it
                    try:
                        due = await self._claim(lane, hand, bounded)
                        await self._gauge()
                    except Exception as exc:
                        due = False  # tried again at the next poll
                        log.warning(
                            "event delivery pass failed",
                            extra={"error": type(exc).__name__, "lane": lane},
                        )
                woken = await self._wait(wake, hand)
                freed = await self._finish(hand)
                due = due or woken or freed

    async def _claim(self, lane: str, hand: Hand, bounded: bool) -> bool:
        """Claim due deliveries for the room in ``hand`` (their attempts start as their
        targets' slots free); in the webhook lane, none for a subscription with
        ``per_subscription`` in hand. With no room, the deliveries waiting behind a
        subscription whose attempts have all hung for a poll are given back. Whether more
        may be due (the claim filled the room)."""
        if len(hand) >= self.batch:
            given = hand.give_back(time.monotonic() - self.poll)
            if given:
                await self.outbox.release(self.owner, given)
        room = self.batch - len(hand)
        if room <= 0:
            return True
        hand.excluded = hand.full() if bounded else []
        claimed = await self.outbox.claim(
            self.owner, lease=self.lease, limit=room, lane=lane, exclude=hand.excluded
        )
        for item in claimed:
            hand.add(item)
        return len(claimed) == room

    async def _wait(self, wake: LaneWake, hand: Hand) -> bool:
        """Until attempts end (and the others in hand with them, within ``linger``) or, with
        room in hand, new events are written (then a ``linger`` more, for those written with
        them) or the next poll is due; whether it was one of these two (a claim is due)."""
        room = len(hand) < self.batch
        await hand.until(self.poll, wake if room else None)
        if room and wake.is_set():
            await asyncio.sleep(self.linger)
            return True
        if not hand.ended:
            return True  # the poll
        await hand.until_all(self.linger)
        return False

    async def _finish(self, hand: Hand) -> bool:
        """Record the attempts that ended (one transaction; one not recorded, the store
        failing, is attempted again after its lease); whether one of them was to a
        subscription the last claim left (whose deliveries may be due)."""
        ended = hand.take_ended()
        if not ended:
            return False
        freed = any(item.delivery.target in hand.excluded for item, _ in ended)
        outcomes = [outcome for _, outcome in ended]
        try:
            states = await self.outbox.finish(self.owner, outcomes)
        except Exception as exc:
            log.warning("event delivery outcomes not recorded", extra={"error": type(exc).__name__})
            return freed
        for (item, outcome), state in zip(ended, states, strict=True):
            self._count(item, outcome, state)
        return freed

    async def run_once(self, lane: str | None = None) -> int:
        """Claim and attempt one batch of due deliveries (of ``lane``, if given); how many
        were claimed."""
        claimed = await self.outbox.claim(self.owner, lease=self.lease, limit=self.batch, lane=lane)
        if not claimed:
            return 0
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._attempt(item, item.webhook)) for item in claimed]
        outcomes = [task.result() for task in tasks]
        # One transaction for the batch's outcomes.
        states = await self.outbox.finish(self.owner, outcomes)
        for item, outcome, state in zip(claimed, outcomes, states, strict=True):
            self._count(item, outcome, state)
        return len(claimed)

    async def _gauge(self) -> None:
        now = time.monotonic()
        if not self.gauges or now - self._gauged_at < GAUGE_INTERVAL:
            return
        self._gauged_at = now
        depth, oldest = await self.outbox.backlog()
        self.report.backlog(depth, oldest or 0.0)

    async def _attempt(self, item: Claimed, hook: Webhook | None) -> Outcome:
        delivery, event = item.delivery, item.event
        status: int | None = None
        async with self._slots[lane_of(delivery.target)]:
            try:
                if delivery.target in EMAIL_TARGETS:
                    await self._email(delivery.target, event.body)
                else:
                    status = await self._post(hook, event.id, event.body)
            except Exception as exc:
                said = isinstance(exc, AttemptFailed | email.RecipientsRefused)
                reason = str(exc) if said else type(exc).__name__
                final = isinstance(exc, AttemptFailed) and exc.final
                if isinstance(exc, AttemptFailed):
                    status = exc.status
                retry_in = self.backoff.delay(delivery.attempts)
                return Outcome(delivery, status, reason, retry_in, final)
        return Outcome(delivery, status)

    def _count(self, item: Claimed, outcome: Outcome, state: str) -> None:
        delivery, event = item.delivery, item.event
        channel = "email" if delivery.target in EMAIL_TARGETS else "webhook"
        result = {"delivered": "delivered", "pending": "retry"}.get(state, "failed")
        if state == "lost":
            result = "delivered" if outcome.error is None else "retry"
        self.report.counted(event.type, channel, result)
        if outcome.error is not None:
            log.log(
                logging.ERROR if result == "failed" else logging.INFO,
                "event delivery attempt failed",
                extra={
                    "event_id": event.id,
                    "event_type": event.type,
                    "target": delivery.target,
                    "attempt": delivery.attempts + 1,
                    "reason": outcome.error,
                    "outcome": result,
                },
            )

    async def _email(self, target: str, body: str) -> None:
        smtp = self.smtp
        if smtp is None:
            raise AttemptFailed("email is not configured (GATEWAY_SMTP_HOST)")
        if target == CARRIER_EMAIL_TARGET:
            if self.carrier_recipients is None:
                raise AttemptFailed("GATEWAY_NOTIFY_CARRIER_RECIPIENTS is off")
            try:
                # The carrier's list: its recipients do not see each other's addresses.
                smtp = replace(smtp, recipients=await self.carrier_recipients(), disclosed=False)
            except RecipientsUnavailable as exc:
                raise AttemptFailed(str(exc)) from None
        elif not smtp.recipients:
            raise AttemptFailed("no addresses are configured (GATEWAY_NOTIFY_EMAILS)")
        async with asyncio.timeout(self.timeout * 3):
            await self.send_email(smtp, body)

    async def _post(self, hook: Webhook | None, event_id: str, body: str) -> int:
        if hook is None:
            # Deleted while its delivery was in flight (or retried): none can follow.
            raise AttemptFailed("the subscription no longer exists", final=True)
        if not hook.enabled:
            # Disabled on purpose: its deliveries fail now (a retry once enabled resends).
            raise AttemptFailed("the subscription is disabled", final=True)
        url = urlsplit(hook.url)
        if url.scheme.lower() not in WEBHOOK_SCHEMES:
            raise AttemptFailed("the URL's scheme is not http(s)")
        # By name here; by address in the connection's own lookup (``CheckedResolver``).
        refused = host_problem((url.hostname or "").lower(), self.allowed_hosts)
        if refused is not None:
            raise AttemptFailed(refused)
        now = datetime.now(UTC)
        headers = signed_headers(event_id, body, hook.secrets(now.timestamp()), now)
        headers["content-type"] = "application/json"
        headers["user-agent"] = f"dlr-gateway/{__version__} (webhooks)"
        try:
            async with asyncio.timeout(self.timeout):
                if self._http is None:
                    self._http = webhook_client(self.timeout, self.allowed_hosts)
                async with self._http.post(
                    hook.url, data=body.encode(), headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    # Drained, never kept: read to its end, the connection carries the next
                    # delivery; a longer answer's is closed when the block ends.
                    read = 0
                    async for chunk in response.content.iter_any():
                        read += len(chunk)
                        if read > DRAIN_BYTES:
                            break
        except TimeoutError:
            raise AttemptFailed(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
                exc.os_error, RefusedAddress
            ):
                raise AttemptFailed(str(exc.os_error)) from None
            raise AttemptFailed(f"{type(exc).__name__}") from None
        if 200 <= status < 300:
            return status
        if 300 <= status < 400:
            raise AttemptFailed(f"HTTP {status}: redirects are not followed", status)
        raise AttemptFailed(f"HTTP {status}", status)


def webhook_client(timeout: float, allowed_hosts: tuple[str, ...] = ()) -> aiohttp.ClientSession:
    """The client deliveries use: no proxy from the environment, bounded connections, and
    the target rule applied to the addresses it connects to (``CheckedResolver``).

    aiohttp rather than httpx: a webhook POST costs it about a tenth of the CPU (its HTTP
    parser is compiled), and a subscription sends one for every call (docs/benchmarks.md).
    """
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(
            limit=32, limit_per_host=8, resolver=CheckedResolver(allowed_hosts)
        ),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        raise_for_status=False,
    )
