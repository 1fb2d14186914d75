"""KeyedLocks: one holder per key, in arrival order; the table empties behind its users,
also when a waiter is cancelled."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.concurrency import KeyedLocks


def test_one_holder_per_key_in_order_and_nothing_left_behind() -> None:
    async def scenario() -> None:
        locks: KeyedLocks[str] = KeyedLocks()
        inside: dict[str, int] = {"a": 0, "b": 0}
        order: list[tuple[str, int]] = []

        async def user(key: str, n: int) -> None:
            async with locks.hold(key):
                inside[key] += 1
                assert inside[key] == 1  # alone with this key
                order.append((key, n))
                await asyncio.sleep(0.001)
                inside[key] -= 1

        await asyncio.gather(*(user(k, n) for n in range(5) for k in ("a", "b")))
        assert [n for k, n in order if k == "a"] == list(range(5))
        assert len(locks) == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_and_a_failing_holder_leave_no_lock() -> None:
    async def scenario() -> None:
        locks: KeyedLocks[str] = KeyedLocks()
        release = asyncio.Event()

        async def holder() -> None:
            async with locks.hold("k"):
                await release.wait()
                raise RuntimeError("boom")

        async def waiter() -> None:
            async with locks.hold("k"):
                raise AssertionError("never reached")

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        second = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        assert len(locks) == 1
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
        release.set()
        with contextlib.suppress(RuntimeError):
            await first
        assert len(locks) == 0
        async with locks.hold("k"):  # free again
            assert len(locks) == 1

    asyncio.run(scenario())
