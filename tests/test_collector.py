"""The garbage collector while a gateway serves: rarer collections, start-up frozen, and
the process's own settings back once the last gateway of the process has stopped."""

from __future__ import annotations

import asyncio
import gc

import pytest

from gateway.app import SERVING_GC_THRESHOLD
from tests.harness import gateway

# A gateway's start collects as it does when serving (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("full_collection")


def test_serving_raises_the_threshold_and_stopping_restores_it() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    async def main() -> None:
        async with gateway():
            seen.append(gc.get_threshold())
            assert gc.get_freeze_count() > 0
            async with gateway():  # a second one in the same process (tests, replicas)
                seen.append(gc.get_threshold())
            seen.append(gc.get_threshold())  # the first still serves
        seen.append(gc.get_threshold())

    asyncio.run(main())
    serving = (SERVING_GC_THRESHOLD, *before[1:])
    assert seen == [serving, serving, serving, before]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
