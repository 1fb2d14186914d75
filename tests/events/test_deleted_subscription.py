"""A deleted or disabled subscription's deliveries: none is pending again, by a race, its next
attempt or an admin's retry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.events.model import EMERGENCY_CALL
from gateway.events.signing import new_secret
from gateway.metrics import Metrics
from gateway.store.deliveries import EMAIL_TARGET, Outcome
from gateway.store.outbox import NewEvent
from tests.events.test_delivery import _count, _emit, _outbox, _worker


def test_a_delivery_in_flight_when_its_subscription_is_deleted_is_not_retried_for_a_day(
    tmp_path: Path,
) -> None:
    """Deleting a subscription fails its pending deliveries, but one in flight then failed
    was put back to pending by its attempt's outcome, and each later attempt ("the
    subscription no longer exists") was a retry until the delivery's time was up
    (``GATEWAY_EVENT_DELIVERY_MAX_AGE``, a day): an ``emergency_call``'s kept
    ``DlrEmergencyCallNotificationsFailing`` firing for a subscription deleted on purpose."""
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            url = "http://127.0.0.1:9/hook"
            await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
            await _emit(outbox, metrics, 1)
            (claimed,) = await outbox.claim("other", lease=30.0)  # in flight elsewhere
            assert await outbox.delete_webhook("wh_1")
            failed = Outcome(claimed.delivery, 503, "HTTP 503", retry_in=0.0)
            await outbox.finish("other", [failed])  # its attempt failed meanwhile
            worker = _worker(outbox, metrics)
            assert await worker.run_once() == 1
            await worker.aclose()
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.last_error == "the subscription no longer exists"
            assert delivery.state == "failed"
            assert await outbox.backlog() == (0, None)
            assert _count(metrics, "retry") == 0

    asyncio.run(main())


def test_an_admins_retry_does_not_revive_a_deleted_subscriptions_deliveries(
    tmp_path: Path,
) -> None:
    """``POST /v1/events/{id}/retry`` answered ``retried: 2`` for an event whose subscription
    was deleted, and put its delivery back to pending, where it could only fail again for a
    day; now only the deliveries that can still be sent are retried."""

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            url = "http://127.0.0.1:9/hook"
            await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
            await outbox.add_webhook("wh_2", url, [EMERGENCY_CALL], new_secret(), None)
            event = NewEvent("evt_1", EMERGENCY_CALL, '{"id": "evt_1"}', 1.0, email=True)
            await outbox.add_events([event], email=(EMAIL_TARGET,))
            # Past its time: every delivery failed (the email's and both subscriptions').
            claimed = await outbox.claim("r", lease=30.0)
            outcomes = [Outcome(c.delivery, None, "down", retry_in=1e9) for c in claimed]
            assert await outbox.finish("r", outcomes) == ["failed"] * 3
            assert await outbox.delete_webhook("wh_1")
            assert await outbox.retry("evt_1") == 2  # the email's and wh_2's
            ((_, found),) = await outbox.page(limit=1)
            states = {d.target: d.state for d in found}
            assert states == {"email": "pending", "wh_1": "failed", "wh_2": "pending"}

    asyncio.run(main())


def test_a_disabled_subscriptions_pending_delivery_fails_at_its_next_attempt(
    tmp_path: Path,
) -> None:
    """``PATCH {"enabled": false}`` left its pending deliveries pending: each attempt ("the
    subscription is disabled") was another retry until the delivery's time was up (a day),
    an ``emergency_call``'s firing ``DlrEmergencyCallNotificationsFailing`` for a
    subscription disabled on purpose. Now the next attempt fails it, an admin's retry leaves
    it failed while the subscription is disabled, and sends it again once it is enabled."""
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            url = "http://127.0.0.1:9/hook"
            await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
            (event_id,) = await _emit(outbox, metrics, 1)
            assert await outbox.update_webhook("wh_1", enabled=False) is not None
            worker = _worker(outbox, metrics)
            assert await worker.run_once() == 1
            await worker.aclose()
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.state == "failed"
            assert delivery.last_error == "the subscription is disabled"
            assert await outbox.backlog() == (0, None)
            assert _count(metrics, "retry") == 0 and _count(metrics, "failed") == 1
            assert await outbox.retry(event_id) == 0  # still disabled: nothing to send
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.state == "failed"
            assert await outbox.update_webhook("wh_1", enabled=True) is not None
            assert await outbox.retry(event_id) == 1
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.state == "pending"

    asyncio.run(main())
