"""Group commit on its own: coalescing, order per key, and the linger that grows batches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from gateway.store.groupcommit import QUIET_TURNS, GroupCommit


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


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_linger_gathers_calls_while_they_keep_coming_and_never_waits_idle() -> None:
    """Under load a flush yields to the loop while calls keep arriving (each a few turns
    after the previous one, as requests on their way to the store do), and goes as soon as
    a few turns bring none: never an idle wait for the whole linger."""

    async def busy(group: GroupCommit[str, int, int], count: int, gap: int) -> None:
        async def late(i: int) -> int:
            await _turns(i * gap)
            return await group.submit(f"k{i}", 1)

        assert await asyncio.gather(*(late(i) for i in range(count))) == [2] * count

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        eager, patient = Flusher(), Flusher()
        await busy(GroupCommit(eager), 6, QUIET_TURNS - 1)
        assert eager.batches[0] == ["k0"]  # no linger: the first call goes alone, at once

        group: GroupCommit[str, int, int] = GroupCommit(patient, linger=30.0)
        # Idle (no batch of more than one call yet): a lone call is flushed at once.
        started = loop.time()
        assert await group.submit("alone", 1) == 2
        # Under load (a batch of two): the next flush waits for the late ones...
        await asyncio.gather(group.submit("x", 1), group.submit("y", 1))
        patient.batches.clear()
        await busy(group, 6, QUIET_TURNS - 1)
        assert patient.batches == [[f"k{i}" for i in range(6)]]
        # ...but not for calls that are not coming: a lone one goes after a few quiet
        # turns, not after the 30 s linger; so does a call that comes only after a pause.
        patient.batches.clear()
        assert await group.submit("lone", 1) == 2
        await busy(group, 2, QUIET_TURNS + 2)
        assert patient.batches == [["lone"], ["k0"], ["k1"]]
        assert loop.time() - started < 5

    asyncio.run(scenario())


def test_linger_ends_at_its_bound_however_many_calls_keep_coming() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        flush = Flusher()
        group: GroupCommit[str, int, int] = GroupCommit(flush, linger=0.05)
        await asyncio.gather(group.submit("x", 1), group.submit("y", 1))
        flush.batches.clear()
        stop = loop.time() + 0.3
        sent = 0

        async def stream() -> None:  # a call every loop turn, for 0.3 s
            nonlocal sent
            pending = []
            while loop.time() < stop:
                pending.append(asyncio.ensure_future(group.submit(f"s{sent}", 1)))
                sent += 1
                await asyncio.sleep(0)
            await asyncio.gather(*pending)

        await stream()
        assert sum(len(b) for b in flush.batches) == sent
        assert len(flush.batches) >= 4  # flushed every ~50 ms, not once at the end

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
