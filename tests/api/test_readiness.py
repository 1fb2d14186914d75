"""``/readyz``: whether this pod can serve, never the carrier's health.

Configuration, draining, and the state store or the call-time query's memory fallback
decide it; the carrier's state is in the body only, and finding it out never makes the
check wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.api.health import Readiness
from gateway.bandwidth import BandwidthClient
from gateway.dlr.callers import CallerIndex
from gateway.store import StoreUnavailable
from tests.harness import gateway, gateway_settings


class DownStore:
    """A state store that cannot be reached."""

    dialect = "postgresql"

    async def ping(self) -> None:
        raise StoreUnavailable("connection refused")


class HungStore:
    """A state store whose ping never returns (a lock held, a connection black-holed)."""

    dialect = "postgresql"

    async def ping(self) -> None:
        await asyncio.Event().wait()


def carrier(handler: Any) -> BandwidthClient:
    return BandwidthClient(
        "https://bw.test/api", "9900000", "u", "p", transport=httpx.MockTransport(handler)
    )


def test_a_carrier_that_does_not_answer_never_holds_up_readiness() -> None:
    async def scenario() -> None:
        # Every carrier call is held for a minute: the probe would take its whole timeout.
        async with gateway(gateway_settings(), latency_ms=60_000) as gw:
            async with asyncio.timeout(5):  # the kubelet gives the probe 2 s
                first = await gw.http.get("/readyz")
                second = await gw.http.get("/readyz")
            assert first.status_code == second.status_code == 200
            assert first.json()["upstream"] == "unknown"  # the probe is out
            assert gw.operations() == ["listNotificationRecipients"]  # one probe, not two

    asyncio.run(scenario())


def test_a_slow_carrier_answering_within_the_gateways_timeout_shows_as_ok() -> None:
    """A carrier that answers every call in over 2 s but within the gateway's own attempt
    timeout (5 s) works: reports go through. Its probe waits as long as a call does, so
    readiness shows it ``ok``, not ``unreachable`` because the probe gave up first."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2.3)
        return httpx.Response(200, content=b"<NotificationRecipientListResponse/>")

    async def scenario() -> list[object]:
        async with carrier(slow) as upstream:
            readiness = Readiness(upstream, window=30.0, config_problems=[])
            seen = [(await readiness.check())["upstream"]]
            async with asyncio.timeout(6):
                while seen[-1] == "unknown":
                    await asyncio.sleep(0.1)
                    seen.append((await readiness.check())["upstream"])
            await readiness.aclose()
            return seen

    seen = asyncio.run(scenario())
    assert seen[0] == "unknown" and seen[-1] == "ok", seen


@pytest.mark.parametrize("store", [DownStore, HungStore], ids=["refused", "hung"])
@pytest.mark.parametrize(
    ("fallback", "ready"), [(CallerIndex(10), True), (None, False)], ids=["memory", "none"]
)
def test_a_store_that_cannot_be_reached_leaves_the_pod_ready_with_its_memory_fallback(
    store: type[DownStore | HungStore], fallback: CallerIndex | None, ready: bool
) -> None:
    """A store that never answers its ping counts as unavailable within a kubelet's default
    1 s probe timeout: the check never hangs on it."""

    async def scenario() -> dict[str, object]:
        async with carrier(lambda request: httpx.Response(200)) as upstream:
            readiness = Readiness(
                upstream,
                store=store(),  # type: ignore[arg-type]
                fallback=fallback,
                window=30.0,
                config_problems=[],
            )
            async with asyncio.timeout(1.0):
                checks = await readiness.check()
            await readiness.aclose()
            return checks

    checks = asyncio.run(scenario())
    assert checks["database"] == "unavailable"
    assert checks["ready"] is ready
    assert ("fallback" in checks) is ready


def test_configuration_problems_and_draining_make_the_pod_unready() -> None:
    async def scenario() -> list[dict[str, object]]:
        async with carrier(lambda request: httpx.Response(200)) as upstream:
            bad = Readiness(upstream, window=30.0, config_problems=["BANDWIDTH_PASSWORD unset"])
            draining = Readiness(upstream, window=30.0, config_problems=[])
            draining.draining = True
            found = [await bad.check(), await draining.check()]
            await bad.aclose()
            return found

    bad, draining = asyncio.run(scenario())
    assert (bad["ready"], bad["config"]) == (False, "BANDWIDTH_PASSWORD unset")
    assert (draining["ready"], draining["draining"]) == (False, True)


def test_a_healthy_carrier_quiet_past_the_window_is_unknown_while_probed_not_unreachable() -> None:
    """After ``GATEWAY_READY_WINDOW`` without a carrier call (a quiet sandbox, a night), the
    first check said ``unreachable`` while its probe was out, and the console's overview
    showed a healthy carrier as unreachable; it says ``unknown`` until the probe answers.
    A carrier whose last answer was a 5xx is still ``unreachable`` meanwhile."""
    now = [0.0]
    answers = [200]

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return httpx.Response(answers[0], content=b"<NotificationRecipientListResponse/>")

    async def states(readiness: Readiness) -> list[object]:
        seen = [(await readiness.check())["upstream"]]
        probe = readiness._probe
        if probe is not None:
            async with asyncio.timeout(5):
                await probe
        seen.append((await readiness.check())["upstream"])
        return seen

    async def scenario() -> None:
        transport = httpx.MockTransport(answer)
        async with BandwidthClient(
            "https://bw.test/api", "9900000", "u", "p", transport=transport, clock=lambda: now[0]
        ) as upstream:
            readiness = Readiness(upstream, window=30.0, config_problems=[], clock=lambda: now[0])
            assert await states(readiness) == ["unknown", "ok"]
            now[0] += 60.0  # quiet past the window and the probe interval
            assert await states(readiness) == ["unknown", "ok"]
            answers[0] = 503
            now[0] += 60.0
            await states(readiness)  # the probe hears the 503
            now[0] += 60.0
            assert (await readiness.check())["upstream"] == "unreachable"
            await readiness.aclose()

    asyncio.run(scenario())
