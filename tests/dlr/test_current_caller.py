"""``Pipeline.current_caller``: a report's left-out name and number, from what the gateway
holds, and from the carrier only when asked to read it."""

from __future__ import annotations

from gateway.dlr.pipeline.records import Change
from tests.dlr.test_pipeline_services import operations, report, run, url, world
from tests.harness import WHITE_HOUSE, gateway_settings, new_simulator

__all__ = ["url"]  # the store fixture, one per backend


def test_the_current_caller_comes_from_the_cache_the_store_then_the_carrier(url: str) -> None:
    async def main() -> None:
        simulator = new_simulator(gateway_settings())
        async with world(url, simulator) as first:
            done = await first.pipeline.report(report("ann", WHITE_HOUSE, 0))
            assert done.endpoint == Change.CREATED
            before = len(first.calls())
            held = await first.pipeline.current_caller("ann", read_carrier=False)
            assert held == ("ALICE SMITH", "+12025550143")
            first.pipeline.known.distrust("ann")  # the store still holds it
            assert await first.pipeline.current_caller("ann", read_carrier=False) == held
            assert len(first.calls()) == before
        # Another gateway, its store empty: only the carrier knows ann.
        async with world("sqlite+aiosqlite://", simulator) as other:
            before = len(other.calls())
            assert await other.pipeline.current_caller("ann", read_carrier=False) == (None, None)
            assert len(other.calls()) == before
            assert await other.pipeline.current_caller("ann") == ("ALICE SMITH", "+12025550143")
            assert operations(other.calls()[before:])[0] == "getEndpoint"
            assert await other.pipeline.current_caller("nobody") == (None, None)

    run(main)
