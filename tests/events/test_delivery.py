"""The delivery worker against a real receiver on 127.0.0.1 and a real SQLite store."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.events.delivery import Backoff, DeliveryWorker, MetricsReport
from gateway.events.emitter import Emitter
from gateway.events.model import EMERGENCY_CALL, Event
from gateway.events.signing import new_secret
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from tests.events.receiver import Receiver


@asynccontextmanager
async def _outbox(tmp_path: Path, **options: float) -> AsyncIterator[OutboxStore]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
    assert isinstance(store, SqlStateStore)
    async with store:
        yield OutboxStore(store, **options)


def _worker(outbox: OutboxStore, metrics: Metrics, **options: float) -> DeliveryWorker:
    return DeliveryWorker(
        outbox,
        MetricsReport(metrics),
        "test-replica",
        backoff=Backoff(base=options.pop("base", 0.05), cap=options.pop("cap", 0.4)),
        timeout=2.0,
        poll=0.02,
        allowed_hosts=("127.0.0.1",),  # the receiver is on loopback, refused by default
        **options,  # type: ignore[arg-type]
    )


async def _emit(outbox: OutboxStore, metrics: Metrics, count: int) -> list[str]:
    emitter = Emitter(outbox, metrics)
    emitter.start()
    events = [Event.new(EMERGENCY_CALL, {"n": n}) for n in range(count)]
    for event in events:
        emitter.emit(event)
    await emitter.aclose()
    return [e.id for e in events]


async def until(predicate: Callable[[], Awaitable[bool] | bool], within: float = 20.0) -> None:
    """Poll what the delivery worker, a receiver's or an SMTP sink's thread change (a plain
    or an awaitable predicate) until it holds; ``TimeoutError`` after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            found = predicate()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return
            await asyncio.sleep(0.02)


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(base=5.0, cap=60.0)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(6)] == [5, 10, 20, 40, 60, 60]
    assert backoff.delay(2, rand=lambda: 0.0) == 10.0  # half, at the least
    assert backoff.delay(10_000, rand=lambda: 1.0) == 60.0  # no overflow


def _count(metrics: Metrics, outcome: str, channel: str = "webhook") -> float:
    labels = {"type": EMERGENCY_CALL, "channel": channel, "outcome": outcome}
    return metrics.registry.get_sample_value("dlr_event_deliveries_total", labels) or 0.0


def test_a_receiver_down_for_a_while_then_up_gets_every_event_once_per_id(
    tmp_path: Path,
) -> None:
    secret = new_secret()
    receiver = Receiver(secret=secret)
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            await outbox.add_webhook("wh_1", receiver.url, [EMERGENCY_CALL], secret, None)
            ids = await _emit(outbox, metrics, 25)
            worker = _worker(outbox, metrics)
            worker.start()
            try:
                # Down: connections refused; every delivery is retried, none is lost.
                await until(lambda: _count(metrics, "retry") >= 50)
                assert receiver.ids() == []
                receiver.up()
                await asyncio.to_thread(receiver.wait_for, 25)
                await until(lambda: _count(metrics, "delivered") >= 25)
            finally:
                await worker.aclose()
                receiver.down()
            assert sorted(receiver.events()) == sorted(ids)  # every event, deduplicated by id
            assert len(receiver.ids()) == 25  # one worker, no lease lost: none sent twice
            assert receiver.unverified == 0
            assert await outbox.backlog() == (0, None)
            assert _count(metrics, "failed") == 0

    asyncio.run(main())


def test_failed_attempts_are_retried_with_growing_delays_then_given_up(tmp_path: Path) -> None:
    receiver = Receiver(status=503).up()
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path, max_age=4.0) as outbox:
            await outbox.add_webhook("wh_1", receiver.url, [EMERGENCY_CALL], new_secret(), None)
            (event_id,) = await _emit(outbox, metrics, 1)
            worker = _worker(outbox, metrics, base=0.2, cap=10.0)
            worker.start()
            try:
                await until(lambda: _count(metrics, "failed") == 1)
            finally:
                await worker.aclose()
            times = receiver.attempts[event_id]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(times) >= 3
            # Jittered in [0.5, 1] of base * 2**n: two steps on, a gap is always longer.
            assert all(later > earlier for earlier, later in zip(gaps, gaps[2:], strict=False))
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.state == "failed" and delivery.attempts == len(times)
            assert delivery.last_status == 503 and delivery.last_error == "HTTP 503"
            # An admin's retry: pending again, delivered once the receiver is well.
            receiver.status = None
            assert await outbox.retry(event_id) == 1
            worker = _worker(outbox, metrics)
            worker.start()
            try:
                await until(lambda: _count(metrics, "delivered") == 1)
            finally:
                await worker.aclose()

    try:
        asyncio.run(main())
    finally:
        receiver.down()


def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    elsewhere = Receiver().up()
    redirecting = Receiver(redirect_to=elsewhere.url).up()
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            await outbox.add_webhook("wh_1", redirecting.url, [EMERGENCY_CALL], new_secret(), None)
            await _emit(outbox, metrics, 1)
            worker = _worker(outbox, metrics)
            assert await worker.run_once() == 1
            await worker.aclose()
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.state == "pending" and delivery.last_status == 307
            assert delivery.last_error == "HTTP 307: redirects are not followed"

    try:
        asyncio.run(main())
    finally:
        redirecting.down()
        elsewhere.down()
    assert elsewhere.attempts == {}


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
def test_a_url_that_is_not_http_is_never_fetched(tmp_path: Path, url: str) -> None:
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
            await _emit(outbox, metrics, 1)
            assert await _worker(outbox, metrics).run_once() == 1
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.last_error == "the URL's scheme is not http(s)"

    asyncio.run(main())


def test_a_stopped_workers_claims_are_due_again_at_once(tmp_path: Path) -> None:
    """A worker stopped with attempts in flight gives their leases back: another (the next
    delivery process, a restarted replica) sends them now, not when the lease ends."""
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            await outbox.add_webhook("wh_1", "https://example.org/h", [EMERGENCY_CALL], "s", None)
            await _emit(outbox, metrics, 3)
            assert len(await outbox.claim("gone", lease=600.0)) == 3
            assert await outbox.claim("next", lease=600.0) == []  # leased
            worker = _worker(outbox, metrics)
            worker.owner = "gone"
            await worker.aclose()  # never started: what it holds is given back all the same
            assert len(await outbox.claim("next", lease=600.0)) == 3
            assert await outbox.release("nobody") == 0

    asyncio.run(main())
