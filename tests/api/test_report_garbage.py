"""A report leaves no cyclic garbage behind: what it built is freed by reference counting
as soon as it is answered, so that the cyclic collector has nothing of it to find (each
object such a cycle keeps costs a collection's walk, and the collector runs more often).

The requests go to the ASGI app directly, each in a task of its own, as a server runs them;
an HTTP client in the test would bring garbage of its own.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import weakref

import pytest
from starlette.types import ASGIApp

from bench.inproc import call
from tests.harness import ADMIN_KEY, WHITE_HOUSE, gateway, report

# A gateway's start collects as it does when serving (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("full_collection")


async def _post(app: ASGIApp, body: bytes) -> int:
    """One ``POST /v1/location-reports`` of ``body``: the answer's status."""
    return await call(app, body, admin_key=ADMIN_KEY)


def _garbage_of(statuses: list[int], alive: list[bool]) -> collections.Counter[str]:
    """The cyclic garbage left after 150 unchanged reports (their statuses into ``statuses``,
    and whether each one's task outlived its answer into ``alive``)."""

    async def scenario() -> collections.Counter[str]:
        async with gateway() as gw:
            devices = [f"garbage-{i}" for i in range(5)]
            for aeui in devices:  # registered: the reports below are unchanged ones
                assert (await gw.report(report(aeui, WHITE_HOUSE, 0))).status_code == 200
            bodies = [
                json.dumps(report(aeui, WHITE_HOUSE, second)).encode()
                for second in range(1, 32)
                for aeui in devices
            ]
            for body in bodies[:5]:  # first calls (imports, caches) out of the way
                assert await asyncio.create_task(_post(gw.app, body)) == 200
            await asyncio.sleep(0.05)
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                # More than the event loop keeps of cancelled timers (the reports' deadlines,
                # with their contexts) before it drops them: what only they held is freed.
                for body in bodies[5:]:
                    task = asyncio.create_task(_post(gw.app, body))
                    statuses.append(await task)
                    gone = weakref.ref(task)
                    del task
                    await asyncio.sleep(0)  # the callback that woke this task held it too
                    alive.append(gone() is not None)
                await asyncio.sleep(0.05)  # the group commit's writes settle
                gc.collect()
                return collections.Counter(type(o).__name__ for o in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()

    return asyncio.run(scenario())


def test_an_unchanged_report_leaves_no_cyclic_garbage() -> None:
    statuses: list[int] = []
    alive: list[bool] = []
    garbage = _garbage_of(statuses, alive)
    assert statuses == [200] * 150
    assert not any(alive), "a request's task outlived its answer"
    assert not garbage, f"cyclic garbage left: {dict(garbage)}"
