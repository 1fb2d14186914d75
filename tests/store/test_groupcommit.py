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
    """A call every loop turn, for 300 turns, each turn 1 ms of the group's clock: a flush
    lingers at most its 50 ms (50 turns), so the stream is flushed in several batches of
    about that size, not once at the end. The clock is the test's, not the wall's: on a
    loaded machine the wall clock jumps while the process waits for a CPU."""

    async def scenario() -> None:
        now = 0.0
        batches: list[int] = []

        async def flush(calls: Sequence[tuple[str, int]]) -> Mapping[str, int]:
            batches.append(len(calls))
            await asyncio.sleep(0)  # a round trip, one loop turn long
            return {key: value * 2 for key, value in calls}

        group: GroupCommit[str, int, int] = GroupCommit(flush, linger=0.05, clock=lambda: now)
        await asyncio.gather(group.submit("x", 1), group.submit("y", 1))
        batches.clear()
        pending = []
        for sent in range(300):
            pending.append(asyncio.ensure_future(group.submit(f"s{sent}", 1)))
            await asyncio.sleep(0)
            now += 0.001
        assert await asyncio.gather(*pending) == [2] * 300
        assert sum(batches) == 300
        assert len(batches) >= 5, batches  # flushed every ~50 turns, not once at the end
        assert max(batches) <= 55, batches  # none lingered past its bound

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
