"""``Wiring``: the one place the carrier client, the geocoder and the pipeline are built, for
the app's lifespan and for an import outside a running gateway alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from gateway.metrics import Metrics
from gateway.simulator import SimulatorTransport
from gateway.wiring import Wiring
from tests.harness import gateway_settings, new_simulator


def test_the_pipeline_is_configured_from_the_settings() -> None:
    async def main() -> None:
        settings = gateway_settings(geo_conflict_margin=123.0, carrier_read_rate=2.0)
        transport = SimulatorTransport(app=new_simulator(settings))
        async with contextlib.AsyncExitStack() as stack:
            wiring = Wiring(settings, stack, Metrics(), transport=transport)
            pipeline = wiring.pipeline(None)
            assert pipeline.reports.conflict_margin_meters == 123.0
            assert (pipeline.known.reads.rate, pipeline.known.reads.burst) == (2.0, 4)

    asyncio.run(main())


def test_a_write_the_carrier_client_abandons_is_handed_to_the_pipeline() -> None:
    async def main() -> None:
        settings = gateway_settings()
        transport = SimulatorTransport(app=new_simulator(settings))
        async with contextlib.AsyncExitStack() as stack:
            wiring = Wiring(settings, stack, Metrics(), transport=transport)
            pipeline = wiring.pipeline(None)
            seen: list[tuple[str, object, Awaitable[None]]] = []
            pipeline.abandoned = lambda *abandoned: seen.append(abandoned)
            settled = asyncio.sleep(0)
            hook = wiring.upstream.on_abandoned
            assert hook is not None
            hook("update_endpoint", None, settled)
            await settled
            assert seen == [("update_endpoint", None, settled)]

    asyncio.run(main())
