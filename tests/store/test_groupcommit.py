"""Group commit on its own: coalescing, order per key, and the linger that grows batches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from gateway.store.groupcommit import GroupCommit


class Flusher:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def __call__(self, calls: Sequence[tuple[str, int]]) -> Mapping[str, int]:
        self.batches.append([key for key, _ in calls])
        await asyncio.sleep(0.001)  # a round trip
        return {key: value * 2 for key, value in calls}


def test_calls_of_one_moment_share_a_batch_and_keys_keep_their_order() -> None:
    async def scenario() -> None:
        flush = Flusher()
        group: GroupCommit[str, int, int] = GroupCommit(flush)
        results = await asyncio.gather(
            group.submit("a", 1), group.submit("b", 2), group.submit("a", 3)
        )
        assert results == [2, 4, 6]
        assert flush.batches == [["a", "b"], ["a"]]  # the second "a" waits for the next

    asyncio.run(scenario())


def test_linger_gathers_late_calls_under_load_and_never_delays_an_idle_store() -> None:
    async def stagger(group: GroupCommit[str, int, int]) -> None:
        async def late(key: str, delay: float) -> int:
            await asyncio.sleep(delay)
            return await group.submit(key, 1)

        assert await asyncio.gather(*(late(f"k{i}", i * 0.002) for i in range(5))) == [2] * 5

    async def scenario() -> None:
        eager, patient = Flusher(), Flusher()
        await stagger(GroupCommit(eager))
        assert len(eager.batches) >= 3  # each late call finds the previous flush done

        group: GroupCommit[str, int, int] = GroupCommit(patient, linger=0.05)
        # Idle (no batch of more than one call yet): a lone call is flushed at once.
        started = asyncio.get_running_loop().time()
        assert await group.submit("alone", 1) == 2
        assert asyncio.get_running_loop().time() - started < 0.04
        # Under load (a batch of two): the next flush waits for the late ones.
        await asyncio.gather(group.submit("x", 1), group.submit("y", 1))
        patient.batches.clear()
        await stagger(group)
        assert len(patient.batches) == 1

    asyncio.run(scenario())


def test_batches_overlap_up_to_the_concurrency_and_a_key_is_never_in_two() -> None:
    async def scenario() -> None:
        in_flight: list[set[str]] = []
        peak = 0
        batches: list[list[str]] = []

        async def flush(calls: Sequence[tuple[str, int]]) -> Mapping[str, int]:
            nonlocal peak
            keys = {key for key, _ in calls}
            for other in in_flight:
                assert not keys & other, "one key in two batches at once"
            in_flight.append(keys)
            peak = max(peak, len(in_flight))
            batches.append(sorted(keys))
            await asyncio.sleep(0.01)  # a commit waiting for its WAL flush
            in_flight.remove(keys)
            return {key: value for key, value in calls}

        group: GroupCommit[str, int, int] = GroupCommit(flush, concurrency=2)

        async def caller(key: str, delay: float) -> int:
            await asyncio.sleep(delay)
            return await group.submit(key, 1)

        calls = [caller(f"k{i % 7}", i * 0.001) for i in range(60)]
        assert await asyncio.gather(*calls) == [1] * 60
        assert peak == 2
        assert sum(len(b) for b in batches) == 60
        await group.close()

    asyncio.run(scenario())
