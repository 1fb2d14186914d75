"""``answer_by`` and ``time_left``: a deadline bound to the task that set it."""

from __future__ import annotations

import asyncio
import gc
import weakref

from gateway.bandwidth.upstreams import answer_by, time_left


def test_the_deadline_binds_the_task_that_set_it_only() -> None:
    async def child() -> float | None:
        return time_left()  # inherits the context, not the deadline

    async def scenario() -> None:
        assert time_left() is None
        answer_by(10.0)
        left = time_left()
        assert left is not None and 9.0 < left <= 10.0
        assert await asyncio.create_task(child()) is None

    asyncio.run(scenario())


def test_the_deadline_keeps_its_task_out_of_a_reference_cycle() -> None:
    """The deadline lives in the task's own context: holding the task strongly there would
    make each task (its coroutine and context with it) garbage for the cyclic collector."""

    async def bound() -> None:
        answer_by(10.0)

    async def scenario() -> None:
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            task = asyncio.create_task(bound())
            await task
            gone = weakref.ref(task)
            del task
            await asyncio.sleep(0)  # the loop's callback that woke this task held it too
            assert gone() is None  # freed by its reference count, no collection needed
        finally:
            if enabled:
                gc.enable()

    asyncio.run(scenario())
