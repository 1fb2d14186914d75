"""Injected latency, errors, timeouts, dropped connections and the rate limit."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.simulator import SimulatorConfig

from .helpers import ACCOUNT, EMPIRE_STATE, Harness, error_of, harness, location_xml


def faulty(kind: str, **changes: object) -> Harness:
    h = harness(SimulatorConfig(seed=3, fault_kinds=(kind,), ambiguous_rate=0.0))
    h.config.fault_rate = 1.0
    for name, value in changes.items():
        setattr(h.config, name, value)
    return h


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
def test_server_errors_on_a_write_apply_nothing_by_default(kind: str, status: int) -> None:
    h = faulty(kind)
    response = h.post("/locations", location_xml())
    assert response.status_code == status
    assert error_of(response).code in ("INTERNAL_ERROR", "SERVICE_UNAVAILABLE")
    if status == 503:
        assert response.headers["retry-after"] == "1"
    assert h.sim.state["locations"] == {}
    call = h.sim.calls[-1]
    assert (call["status"], call["fault"], call["applied"]) == (status, kind, False)


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
def test_ambiguous_server_error_applies_the_write_first(kind: str, status: int) -> None:
    h = faulty(kind, ambiguous_rate=1.0)
    response = h.post("/locations", location_xml())
    assert response.status_code == status
    assert "LOC1" in h.sim.state["locations"]
    call = h.sim.calls[-1]
    assert (call["status"], call["fault"], call["applied"], call["id"]) == (
        status,
        kind,
        True,
        "LOC1",
    )


def test_ambiguous_error_on_a_read_is_just_an_error() -> None:
    h = faulty("500", ambiguous_rate=1.0)
    assert h.get("/locations").status_code == 500
    assert h.sim.calls[-1]["applied"] is False


def test_injected_429_has_retry_after_and_applies_nothing() -> None:
    h = faulty("429", ambiguous_rate=1.0, retry_after=7)
    response = h.post("/locations", location_xml())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert error_of(response).code == "RATE_LIMITED"
    assert h.sim.state["locations"] == {}
    assert h.sim.calls[-1]["fault"] == "429"


def test_reset_reaches_the_client_as_a_protocol_error() -> None:
    h = faulty("reset")
    with pytest.raises(httpx.RemoteProtocolError):
        h.post("/locations", location_xml())
    assert h.sim.state["locations"] == {}
    call = h.sim.calls[-1]
    assert (call["status"], call["fault"], call["applied"]) == (None, "reset", False)


def test_ambiguous_reset_applies_the_write_first() -> None:
    h = faulty("reset", ambiguous_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        h.post("/locations", location_xml())
    assert "LOC1" in h.sim.state["locations"]
    assert h.sim.calls[-1]["applied"] is True


def test_reset_on_a_read() -> None:
    h = faulty("reset")
    with pytest.raises(httpx.RemoteProtocolError):
        h.get("/locations")


def test_timeout_holds_then_answers_and_applies() -> None:
    h = faulty("timeout", timeout_hold=12.5)
    response = h.post("/locations", location_xml())
    assert h.sleep.holds == [12.5]
    assert response.status_code == 201
    assert "LOC1" in h.sim.state["locations"]
    call = h.sim.calls[-1]
    assert (call["status"], call["fault"], call["applied"]) == (201, "timeout", True)


def test_timeout_without_late_apply_applies_nothing() -> None:
    h = faulty("timeout", late_apply=False)
    response = h.post("/locations", location_xml())
    assert response.status_code == 504
    assert error_of(response).code == "REQUEST_TIMEOUT"
    assert h.sim.state["locations"] == {}
    # A read still answers after the hold.
    assert h.get("/locations").status_code == 200


def test_late_write_lands_after_the_client_gave_up() -> None:
    h = faulty("timeout", timeout_hold=30.0)

    async def main() -> None:
        h.sleep.gate, h.sleep.entered = asyncio.Event(), asyncio.Event()
        async with h.client() as client:
            request = asyncio.create_task(
                client.post(ACCOUNT + "/locations", content=location_xml())
            )
            await h.sleep.entered.wait()  # the request is being held
            request.cancel()  # the client gives up; its connection is gone
            with pytest.raises(asyncio.CancelledError):
                await request
            assert h.sim.state["locations"] == {}
            h.sleep.gate.set()  # the hold ends
            await h.sim.wait_idle()

    asyncio.run(main())
    assert h.sleep.holds == [30.0]
    assert "LOC1" in h.sim.state["locations"]
    call = h.sim.calls[-1]
    assert (call["status"], call["fault"], call["applied"]) == (201, "timeout", True)


def test_reset_while_held_drops_the_late_write() -> None:
    h = faulty("timeout")

    async def main() -> int:
        h.sleep.gate, h.sleep.entered = asyncio.Event(), asyncio.Event()
        async with h.client() as client:
            request = asyncio.create_task(
                client.post(ACCOUNT + "/locations", content=location_xml())
            )
            await h.sleep.entered.wait()
            h.sim.reset()
            h.sleep.gate.set()
            return (await request).status_code

    assert asyncio.run(main()) == 503
    assert h.sim.state["locations"] == {}
    assert h.sim.calls == []


def test_faults_come_after_auth() -> None:
    h = faulty("500")
    response = h.request("GET", "/locations", auth=("sandbox", "wrong"))
    assert response.status_code == 401
    assert h.sim.calls[-1]["fault"] is None


def test_control_views_get_no_faults() -> None:
    h = faulty("500")
    response = h.run(lambda c: c.get("/_sim/state"))
    assert response.status_code == 200


def test_latency_is_slept_before_each_request() -> None:
    h = harness(SimulatorConfig(latency_ms=250))
    h.get("/locations")
    h.post("/locations", location_xml())
    assert h.sleep.holds == [0.25, 0.25]


def test_seeded_faults_are_reproducible() -> None:
    def statuses() -> list[int]:
        h = harness(SimulatorConfig(seed=42, fault_rate=0.5, fault_kinds=("500", "503", "429")))
        return [h.get("/locations").status_code for _ in range(30)]

    first = statuses()
    assert first == statuses()
    assert 200 in first
    assert set(first) - {200}


def test_fault_rate_between_zero_and_one_mixes_answers() -> None:
    h = harness(SimulatorConfig(seed=5, fault_rate=0.3, fault_kinds=("500",)))
    answers = [h.get("/locations").status_code for _ in range(100)]
    assert 10 < answers.count(500) < 60


def test_rate_limit_answers_429_with_retry_after() -> None:
    h = harness(SimulatorConfig(rate_limit=2.0))
    assert [h.get("/locations").status_code for _ in range(3)] == [200, 200, 429]
    limited = h.get("/locations")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert error_of(limited).code == "RATE_LIMITED"
    h.clock.advance(0.5)  # one token back at 2 per second
    assert [h.get("/locations").status_code for _ in range(2)] == [200, 429]
    h.clock.advance(10)  # the bucket refills up to its burst only
    assert [h.get("/locations").status_code for _ in range(3)] == [200, 200, 429]
    assert h.sim.calls[-1]["status"] == 429


def test_rate_limited_write_applies_nothing() -> None:
    h = harness(SimulatorConfig(rate_limit=1.0))
    h.get("/locations")
    assert h.post("/locations", location_xml()).status_code == 429
    assert h.sim.state["locations"] == {}


def test_slow_rate_limit_asks_for_a_longer_wait() -> None:
    h = harness(SimulatorConfig(rate_limit=0.25))
    h.get("/locations")
    assert h.get("/locations").headers["retry-after"] == "4"


def test_config_changes_take_effect_at_run_time(h: Harness) -> None:
    assert h.post("/locations", location_xml()).status_code == 201
    h.config.fault_rate = 1.0
    h.config.fault_kinds = ("503",)
    h.config.ambiguous_rate = 0.0
    assert h.post("/locations", location_xml("LOC2", EMPIRE_STATE)).status_code == 503
    h.config.fault_rate = 0.0
    assert h.post("/locations", location_xml("LOC2", EMPIRE_STATE)).status_code == 201
