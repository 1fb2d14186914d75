"""A replica's background jobs start once its start-up is done, not while it warms up.

Reconciling (carrier reads and repairs) and event delivery during the warm-up competed with
it for the CPU and acted on the carrier before the replica was ready: a replica started
beside a late carrier write repaired it before it was up (tests/test_replicas.py).
"""

from __future__ import annotations

import asyncio

import pytest

import gateway.app as app_module
from tests.harness import gateway, gateway_settings

BACKGROUND = {"reconcile", "event-delivery", "event-emitter", "stale-devices"}


def test_background_jobs_start_after_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[set[str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        warm_up = app_module.warm_up

        def watched() -> None:
            warm_up()
            seen.append({t.get_name() for t in asyncio.all_tasks(loop)})

        monkeypatch.setattr(app_module, "warm_up", watched)
        settings = gateway_settings(reconcile_interval=1.0, reconcile_tick=0.05)
        async with gateway(settings):
            running = {t.get_name() for t in asyncio.all_tasks()}
        assert running >= BACKGROUND
        assert seen and not (seen[0] & BACKGROUND), seen

    asyncio.run(main())
