"""A webhook receiver in trouble never holds back the Kari's Law email: the worker sends
emails and webhooks in lanes of their own (claims, slots, batches)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.bandwidth.models import NotificationRecipientListResponse
from gateway.events import email as mail
from gateway.events.delivery import Backoff, DeliveryWorker, MetricsReport
from gateway.events.emitter import Emitter
from gateway.events.model import EMERGENCY_CALL, Event
from gateway.events.recipients import CarrierRecipients, RecipientsUnavailable
from gateway.events.signing import new_secret
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.store.deliveries import CARRIER_EMAIL_TARGET, EMAIL_TARGET, Claimed
from gateway.store.outbox import NewEvent, OutboxStore
from gateway.store.sql import SqlStateStore
from tests.events.receiver import Receiver
from tests.events.test_delivery import _count, until


class SilentCarrier:
    """A carrier whose list of notification recipients never comes (overloaded)."""

    def __init__(self) -> None:
        self.lists = 0

    async def list_notification_recipients(self) -> NotificationRecipientListResponse:
        self.lists += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


#: The delivery timeout: longer than the tests wait for what must not wait for it.
TIMEOUT = 30.0
#: The delivery timeout of the test with a healthy receiver: it must get its deliveries
#: before the silent receiver's first attempts time out.
HANG = 10.0
SMTP = mail.SmtpConfig("127.0.0.1", 25, "none", None, None, "dlr@example.org", ("a@example.org",))


async def _silent_receiver(held: list[int] | None = None) -> tuple[asyncio.Server, int]:
    """Takes every connection and its request, and never answers (nor closes); ``held``
    gets the number of connections open at each new one."""
    open_now = [0]

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_now[0] += 1
        if held is not None:
            held.append(open_now[0])
        try:
            while await reader.read(65536):
                pass
        finally:
            open_now[0] -= 1
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def _beside_a_silent_receiver(
    tmp_path: Path, held: list[int] | None = None
) -> AsyncIterator[tuple[OutboxStore, str]]:
    """An outbox on a SQLite file in ``tmp_path``, and the URL of a ``_silent_receiver``."""
    server, port = await _silent_receiver(held)
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
    assert isinstance(store, SqlStateStore)
    async with server, store:
        yield OutboxStore(store), f"http://127.0.0.1:{port}/hook"


async def _calls(
    outbox: OutboxStore, metrics: Metrics, count: int, email: tuple[str, ...] = ()
) -> None:
    """``count`` emergency calls' events written to the outbox, emailed to ``email``."""
    emitter = Emitter(outbox, metrics, email=email)
    emitter.start()
    for n in range(count):
        emitter.emit(Event.new(EMERGENCY_CALL, {"n": n}))
    await emitter.aclose()


def _worker(
    outbox: OutboxStore,
    metrics: Metrics,
    send: Callable[[mail.SmtpConfig, str], Awaitable[None]],
    **options: Any,
) -> DeliveryWorker:
    """A worker whose retries wait a minute (each delivery's first attempt is what counts)."""
    return DeliveryWorker(
        outbox,
        MetricsReport(metrics),
        "r",
        smtp=SMTP,
        send_email=send,
        backoff=Backoff(base=60.0),
        timeout=TIMEOUT,
        poll=0.02,
        **options,
    )


def _webhook_worker(outbox: OutboxStore, metrics: Metrics) -> DeliveryWorker:
    """A worker sending to loopback receivers, whose attempts wait ``HANG`` for an answer and
    whose retries wait ten minutes."""
    return DeliveryWorker(
        outbox,
        MetricsReport(metrics),
        "r",
        allowed_hosts=("127.0.0.1",),
        backoff=Backoff(base=600.0),
        timeout=HANG,
        poll=0.02,
    )


def test_a_webhook_receiver_that_never_answers_does_not_delay_the_emails(
    tmp_path: Path,
) -> None:
    """Before, one claim took both kinds and waited for all its attempts: each batch of 20
    waited for its hanging webhooks (a timeout each, 8 at a time), so the emails of 40 calls
    took four batches of two timeouts each; a receiver answering slowly held every call's
    email back by as much, and the backlog grew at one call every few seconds."""
    metrics = Metrics()
    sent: dict[str, float] = {}

    async def send(config: mail.SmtpConfig, body: str) -> None:
        sent[body] = time.monotonic()

    async def main() -> None:
        async with _beside_a_silent_receiver(tmp_path) as (outbox, url):
            await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
            await _calls(outbox, metrics, 40, email=(EMAIL_TARGET,))
            worker = _worker(outbox, metrics, send, allowed_hosts=("127.0.0.1",))
            worker.start()
            try:
                # Well within one webhook timeout (before: a timeout at the least).
                await until(lambda: len(sent) == 40, within=20.0)
            finally:
                await worker.aclose()

    asyncio.run(main())


def test_a_webhook_receiver_that_never_answers_does_not_delay_another_subscriptions(
    tmp_path: Path,
) -> None:
    """Before, the webhook lane claimed a batch of 20 and waited for all its attempts: with a
    receiver that never answers subscribed next to a healthy one, each batch held ten of its
    deliveries (8 at a time: two timeouts a batch), so the healthy receiver got 10 deliveries
    a batch, one batch every two timeouts. Now a freed slot claims the next delivery, and one
    subscription has at most ``per_subscription`` attempts in flight: the healthy receiver
    gets its 40 while the silent one's first attempts are still waiting for their timeout."""
    metrics = Metrics()
    healthy = Receiver().up()
    held: list[int] = []

    async def main() -> None:
        async with _beside_a_silent_receiver(tmp_path, held) as (outbox, silent_url):
            await outbox.add_webhook("wh_silent", silent_url, [EMERGENCY_CALL], new_secret(), None)
            await outbox.add_webhook("wh_ok", healthy.url, [EMERGENCY_CALL], new_secret(), None)
            await _calls(outbox, metrics, 40)
            worker = _webhook_worker(outbox, metrics)
            worker.start()
            try:
                # Before: 10 deliveries, then nothing until two timeouts had passed.
                await until(lambda: _count(metrics, "delivered") == 40, within=HANG)
                assert len(healthy.deliveries) == 40
                # ... while the silent receiver's attempts are still waiting for an answer.
                assert _count(metrics, "retry") == 0
                # It holds at most its share of the lane's slots, never all of them.
                assert 1 <= max(held) <= worker.per_subscription < worker.concurrency
                # Its attempts time out, and wait for their next one (the backoff's).
                await until(lambda: _count(metrics, "retry") >= 1, within=HANG * 3)
            finally:
                await worker.aclose()
            errors = [
                d.last_error
                for _, found in await outbox.page(limit=40)
                for d in found
                if d.target == "wh_silent" and d.attempts
            ]
            assert errors and set(errors) == {f"no answer within {HANG:g} s"}

    try:
        asyncio.run(main())
    finally:
        healthy.down()


def test_a_hanging_receivers_deliveries_claimed_first_are_given_back_for_another_subscriptions(
    tmp_path: Path,
) -> None:
    """A claim may take a whole batch of one subscription's deliveries (they were due first):
    those beyond its ``per_subscription`` slots wait in hand. When its attempts have hung for a
    poll with the hand full, the waiting ones are given back, so that the next claim takes
    another subscription's deliveries rather than wait for the hanging attempts' timeouts."""
    metrics = Metrics()
    healthy = Receiver().up()

    async def main() -> None:
        async with _beside_a_silent_receiver(tmp_path) as (outbox, silent_url):
            await outbox.add_webhook("wh_silent", silent_url, [EMERGENCY_CALL], new_secret(), None)
            await _calls(outbox, metrics, 30)  # the silent receiver's, due first
            await asyncio.sleep(0.01)
            await outbox.add_webhook("wh_ok", healthy.url, [EMERGENCY_CALL], new_secret(), None)
            await _calls(outbox, metrics, 10)  # then both subscriptions'
            worker = _webhook_worker(outbox, metrics)
            worker.start()
            try:
                # Without the give-back: nothing until the silent attempts' timeouts.
                await until(lambda: _count(metrics, "delivered") == 10, within=HANG / 2)
                assert len(healthy.deliveries) == 10
                assert _count(metrics, "retry") == 0
            finally:
                await worker.aclose()

    try:
        asyncio.run(main())
    finally:
        healthy.down()


def test_a_carrier_that_never_lists_its_recipients_does_not_delay_the_configured_emails(
    tmp_path: Path,
) -> None:
    """README: a carrier that cannot list its recipients "delays only their email ... while
    the configured addresses are emailed at once". Before, each carrier email read the list
    in turn (a timeout each, under one lock) while holding one of the 8 email slots, and the
    batch waited for them all: the configured emails waited for a timeout or more."""
    metrics = Metrics()
    sent: dict[str, tuple[str, ...]] = {}
    carrier = SilentCarrier()

    async def send(config: mail.SmtpConfig, body: str) -> None:
        if config.disclosed:  # the configured addresses' (the carrier's never get here)
            sent[body] = config.recipients

    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            outbox = OutboxStore(store)
            await _calls(outbox, metrics, 10, email=(EMAIL_TARGET, CARRIER_EMAIL_TARGET))
            recipients = CarrierRecipients(carrier, timeout=TIMEOUT)
            worker = _worker(outbox, metrics, send, carrier_recipients=recipients)
            worker.start()
            try:
                # Well within one read's timeout (before: a timeout at the least).
                await until(lambda: len(sent) == 10, within=20.0)
            finally:
                await worker.aclose()
            assert carrier.lists == 1  # the first read, still waiting

    asyncio.run(main())


def test_deliveries_waiting_on_a_failed_read_of_the_carriers_list_do_not_read_it_again() -> None:
    """Each carrier email waiting on the lock read the list again when the read before it had
    failed: against a carrier that does not answer, a batch of 20 took 20 timeouts one after
    another (past its lease, so another replica took the same deliveries and read again),
    and an overloaded carrier got a read per delivery. A failure now answers the deliveries
    waiting on it, and the next read is made after ``retry_failed``."""
    carrier = SilentCarrier()
    clock = [0.0]
    recipients = CarrierRecipients(carrier, timeout=0.2, retry_failed=5.0, clock=lambda: clock[0])

    async def main() -> list[BaseException | tuple[str, ...]]:
        return await asyncio.gather(*(recipients() for _ in range(5)), return_exceptions=True)

    answers = asyncio.run(main())
    assert all(isinstance(a, RecipientsUnavailable) for a in answers), answers
    assert carrier.lists == 1
    clock[0] = 5.0  # the next read, once ``retry_failed`` has passed
    assert isinstance(asyncio.run(main())[0], RecipientsUnavailable)
    assert carrier.lists == 2


def test_an_attempt_that_ends_claims_again_only_when_more_may_be_due(tmp_path: Path) -> None:
    """A freed slot claims the next delivery when the last claim filled the slots; when it
    took all that was due, the next claim waits for new events (a wake) or the next poll, as
    before: an event to two subscriptions costs one claim, not one per attempt."""
    metrics = Metrics()
    one, two = Receiver().up(), Receiver().up()
    claims: list[str | None] = []

    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            outbox = OutboxStore(store)
            for hook, receiver in (("wh_1", one), ("wh_2", two)):
                await outbox.add_webhook(hook, receiver.url, [EMERGENCY_CALL], new_secret(), None)
            worker = DeliveryWorker(
                outbox, MetricsReport(metrics), "r", allowed_hosts=("127.0.0.1",), poll=3600.0
            )
            claim = outbox.claim

            async def counted(owner: str, **options: Any) -> list[Claimed]:
                if options.get("lane") == "webhook":
                    claims.append(owner)
                return await claim(owner, **options)

            outbox.claim = counted  # type: ignore[method-assign]
            worker.start()
            try:
                await until(lambda: len(claims) == 1)  # the first, at the start: none due
                body = '{"id":"evt_1"}'
                await outbox.add_events([NewEvent("evt_1", EMERGENCY_CALL, body, time.time())])
                worker.wake.set()
                await until(lambda: _count(metrics, "delivered") == 2)
                await asyncio.sleep(0.2)  # any claim the attempts' ends would make
                assert len(claims) == 2
            finally:
                await worker.aclose()

    try:
        asyncio.run(main())
    finally:
        one.down()
        two.down()
