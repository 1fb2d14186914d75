"""A delivery after two rotations within a day, verified by the Standard Webhooks library."""

from __future__ import annotations

import asyncio
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from gateway.events.model import EMERGENCY_CALL
from gateway.events.service import SECRET_OVERLAP
from gateway.events.signing import new_secret
from gateway.metrics import Metrics
from tests.events.receiver import Receiver
from tests.events.test_delivery import _count, _emit, _outbox, _worker


def test_a_receiver_holding_the_first_secret_verifies_a_delivery_after_two_rotations(
    tmp_path: Path,
) -> None:
    """Rotated twice within the day (an admin retrying a rotation whose answer was lost),
    the first secret no longer signed: a receiver still on it refused every delivery, 911
    calls' included, though its day of overlap had not ended."""
    first, second, newest = new_secret(), new_secret(), new_secret()
    receiver = Receiver(secret=first).up()
    metrics = Metrics()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            await outbox.add_webhook("wh_1", receiver.url, [EMERGENCY_CALL], first, None)
            assert await outbox.rotate_secret("wh_1", second, SECRET_OVERLAP) is not None
            assert await outbox.rotate_secret("wh_1", newest, SECRET_OVERLAP) is not None
            (event_id,) = await _emit(outbox, metrics, 1)
            worker = _worker(outbox, metrics)
            try:
                assert await worker.run_once() == 1
            finally:
                await worker.aclose()
            assert receiver.unverified == 0 and receiver.ids() == [event_id]
            assert _count(metrics, "delivered") == 1
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert delivery.state == "delivered"

    try:
        asyncio.run(main())
    finally:
        receiver.down()
    (received,) = receiver.deliveries
    assert len(received.headers["webhook-signature"].split(" ")) == 3
    for secret in (second, newest):  # a receiver on either later secret verifies it too
        Webhook(secret).verify(received.body, received.headers)
