"""``CarrierReads``: one carrier read per device per interval, few at a time, at a bounded rate."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.bandwidth.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.dlr.reads import CarrierReads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Carrier:
    """Counts reads; each answers ``answer`` (or raises it) once ``gate`` is set."""

    def __init__(self, answer: object = "bound", gate: asyncio.Event | None = None) -> None:
        self.answer = answer
        self.gate = gate
        self.reads: list[str] = []

    def fetch(self, key: str) -> object:
        async def read() -> object:
            self.reads.append(key)
            if self.gate is not None:
                await self.gate.wait()
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        return read


def reads(clock: Clock, **options: object) -> CarrierReads[object]:
    return CarrierReads(clock=clock, **options)  # type: ignore[arg-type]


def test_one_read_per_device_per_interval_found_or_not() -> None:
    async def main() -> None:
        clock = Clock()
        lane = reads(clock, interval=60.0)
        found, missing = Carrier("bound"), Carrier(None)
        for _ in range(20):
            assert await lane.read("a", found.fetch("a")) == "bound"
            assert await lane.read("b", missing.fetch("b")) is None
        assert (found.reads, missing.reads) == (["a"], ["b"])
        clock.now += 60
        assert await lane.read("a", found.fetch("a")) == "bound"
        assert found.reads == ["a", "a"]
        lane.forget("b")
        assert await lane.read("b", missing.fetch("b")) is None
        assert missing.reads == ["b", "b"]

    asyncio.run(main())


def test_a_failed_read_is_not_repeated_within_the_interval() -> None:
    async def main() -> None:
        clock = Clock()
        lane = reads(clock, interval=60.0)
        down = Carrier(UpstreamTimeout("no answer"))
        with pytest.raises(UpstreamTimeout):
            await lane.read("a", down.fetch("a"))
        clock.now += 10
        with pytest.raises(UpstreamUnavailable) as again:
            await lane.read("a", down.fetch("a"))
        assert again.value.retry_after == 50
        assert down.reads == ["a"]

    asyncio.run(main())


def test_concurrent_reads_of_one_device_share_one_carrier_read() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        carrier = Carrier("bound", gate)
        lane = reads(Clock())
        waiting = [asyncio.ensure_future(lane.read("a", carrier.fetch("a"))) for _ in range(50)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiting) == ["bound"] * 50
        assert carrier.reads == ["a"]

    asyncio.run(main())


def test_past_max_in_flight_a_read_is_refused_at_once_without_a_call() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        carrier = Carrier("bound", gate)
        lane = reads(Clock(), max_in_flight=2, rate=100.0, burst=100)
        slow = [asyncio.ensure_future(lane.read(k, carrier.fetch(k))) for k in ("a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(UpstreamUnavailable) as refused:
            await lane.read("c", carrier.fetch("c"))
        assert refused.value.retry_after == 1
        assert lane.in_flight == 2
        gate.set()
        await asyncio.gather(*slow)
        assert await lane.read("c", carrier.fetch("c")) == "bound"
        assert carrier.reads == ["a", "b", "c"]

    asyncio.run(main())


def test_reads_across_devices_keep_to_the_rate() -> None:
    async def main() -> None:
        clock = Clock()
        carrier = Carrier("bound")
        lane = reads(clock, rate=5.0, burst=10)
        for n in range(10):
            assert await lane.read(f"d{n}", carrier.fetch(f"d{n}")) == "bound"
        with pytest.raises(UpstreamUnavailable) as refused:
            await lane.read("d10", carrier.fetch("d10"))
        assert refused.value.retry_after == 1
        assert len(carrier.reads) == 10  # the burst, at one instant
        clock.now += 1.0
        for n in range(11, 21):
            with contextlib.suppress(UpstreamUnavailable):
                await lane.read(f"d{n}", carrier.fetch(f"d{n}"))
        assert len(carrier.reads) == 15  # five more a second

    asyncio.run(main())


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        CarrierReads(max_in_flight=0)
    with pytest.raises(ValueError, match="rate"):
        CarrierReads(rate=0)
