"""The fault suite: a carrier that fails, answers late and applies writes late.

The simulator injects 500, 503, 429 (with Retry-After), timeouts whose writes land
seconds later, and dropped connections, on a quarter of all calls; half of the failed
writes are applied before the error is answered. Then a device's record at the carrier
must still end as its last acknowledged report, or a later one it sent.

The repair bound under test: once the carrier has answered an abandoned write (however
late), the gateway re-reads the device's record and repairs it within one read and one
write, so all repairs are done shortly after the last held write lands. The holds here
are several times the gateway's own report deadline, and the gateway does not know them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.datastructures import Secret

from gateway.dlr.ids import endpoint_id_for
from gateway.dlr.pipeline import Pipeline
from tests.harness import (
    EMPIRE_STATE,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    WILLIS_TOWER,
    Gateway,
    gateway,
    gateway_settings,
    phone_of,
    report,
)

PLACES = [WHITE_HOUSE, EMPIRE_STATE, SPACE_NEEDLE, WILLIS_TOWER]
DEVICES = 25
REPORTS = 6
REPORT_DEADLINE = 1.0
HOLD = 4 * REPORT_DEADLINE
#: After the last held write lands: one re-read and one write per device, with room to spare.
REPAIR_BOUND = 3.0
QUERY_TOKEN = "query-token-0123456789abcdef"


@dataclass
class Sent:
    seconds: int
    place: str
    status: int
    location_id: str | None


def pipeline_of(gw: Gateway) -> Pipeline:
    found: Pipeline = gw.app.state.services.pipeline
    return found


def fault_settings() -> Any:
    return gateway_settings(
        upstream_timeout=0.25,
        upstream_deadline=0.8,
        upstream_max_attempts=3,
        upstream_backoff_base=0.02,
        upstream_backoff_max=0.1,
        report_deadline=REPORT_DEADLINE,
        upstream_settle_timeout=30.0,
        breaker_failures=50,
    )


async def device_run(gw: Gateway, index: int, log: dict[str, list[Sent]]) -> None:
    aeui = f"fault-{index}"
    for n in range(REPORTS):
        place = PLACES[(index + n) % len(PLACES)]
        response = await gw.report(report(aeui, place, n * 10 + index % 7))
        location_id = response.json().get("locationId") if response.status_code == 200 else None
        log[aeui].append(Sent(n, place, response.status_code, location_id))
        if response.status_code != 200:
            assert response.status_code in (503, 504), response.text
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["content-type"].startswith("application/problem+json")


def test_faults_never_leave_a_device_behind_its_acknowledged_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    async def scenario() -> None:
        settings = fault_settings()
        log: dict[str, list[Sent]] = defaultdict(list)
        async with gateway(
            settings,
            fault_rate=0.25,
            timeout_hold=HOLD,
            late_apply=True,
            ambiguous_rate=0.5,
            seed=20261127,
        ) as gw:
            pipeline = pipeline_of(gw)
            # Learn every place's location ID on a healthy carrier first.
            gw.simulator.config.fault_rate = 0.0
            ids: dict[str, str] = {}
            for i, place in enumerate(PLACES):
                answer = await gw.report(report(f"probe-{i}", place, 0))
                ids[place] = answer.json()["locationId"]
            gw.simulator.config.fault_rate = 0.25

            await asyncio.gather(*(device_run(gw, i, log) for i in range(DEVICES)))
            statuses = [s.status for sent in log.values() for s in sent]
            assert statuses.count(200) >= DEVICES * REPORTS // 3, statuses
            assert set(statuses) - {200} <= {503, 504}
            assert set(statuses) != {200}, "the faults never reached a client"

            # The carrier recovers; its held writes land when their holds end.
            gw.simulator.config.fault_rate = 0.0
            started = time.monotonic()
            await asyncio.wait_for(gw.simulator.wait_idle(), HOLD + 2)
            landed = time.monotonic()
            await asyncio.wait_for(pipeline.idle(), REPAIR_BOUND + HOLD)
            assert time.monotonic() - landed <= REPAIR_BOUND, time.monotonic() - started

            state = gw.simulator.state
            faulted = [c for c in gw.simulator.calls if c["fault"]]
            assert {c["fault"] for c in faulted} >= {"500", "503", "429", "timeout", "reset"}
            for aeui, sent in log.items():
                acknowledged = [i for i, s in enumerate(sent) if s.status == 200]
                if not acknowledged:
                    continue
                allowed = {ids[s.place] for s in sent[acknowledged[-1] :]}
                held = state["endpoints"][endpoint_id_for(aeui)]["locationId"]
                assert held in allowed, (aeui, held, sent)

            repairs = gw.metrics.registry.get_sample_value(
                "dlr_reconcile_repairs_total", {"reason": "regressed"}
            )
            # Late writes that undid a newer report happened and were repaired.
            assert repairs is not None and repairs >= 1

    asyncio.run(scenario())
    # Every fault was handled: nothing logged as an error, no unhandled exception.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_late_write_that_undoes_a_newer_report_is_repaired() -> None:
    async def scenario() -> None:
        settings = fault_settings()
        async with gateway(settings, timeout_hold=HOLD, late_apply=True) as gw:
            pipeline = pipeline_of(gw)
            first = await gw.report(report("late", WHITE_HOUSE, 0))
            assert first.status_code == 200
            white_house = first.json()["locationId"]
            empire = (await gw.report(report("other", EMPIRE_STATE, 0))).json()["locationId"]

            # Every call is held past the deadline: the move to EMPIRE_STATE times out, and
            # its writes will land when the holds end.
            gw.simulator.config.fault_rate = 1.0
            gw.simulator.config.fault_kinds = ("timeout",)
            moved = await gw.report(report("late", EMPIRE_STATE, 10))
            assert moved.status_code in (503, 504)

            # The carrier recovers at once; the device moves back, acknowledged.
            gw.simulator.config.fault_rate = 0.0
            back = await gw.report(report("late", WHITE_HOUSE, 20))
            assert back.status_code == 200
            endpoint = endpoint_id_for("late")
            assert gw.simulator.state["endpoints"][endpoint]["locationId"] == white_house

            # The held move lands late and undoes the acknowledged report...
            await asyncio.wait_for(gw.simulator.wait_idle(), HOLD + 2)
            # ...and once the gateway hears the late answer, it repairs.
            await asyncio.wait_for(pipeline.idle(), REPAIR_BOUND)
            assert gw.simulator.state["endpoints"][endpoint]["locationId"] == white_house
            late = [
                c
                for c in gw.simulator.calls
                if c["operation"] == "updateEndpoint" and c["fault"] == "timeout"
            ]
            assert late and all(c["applied"] for c in late)
            assert empire != white_house
            repairs = gw.metrics.registry.get_sample_value(
                "dlr_reconcile_repairs_total", {"reason": "regressed"}
            )
            # One repair per held attempt that landed after the acknowledged report (the
            # client retried the timed-out write, and every attempt landed late).
            assert repairs == len(late)

            # And an unchanged report is free again once everything has settled.
            seq = gw.last_seq()
            again = await gw.report(report("late", WHITE_HOUSE, 30))
            assert again.json()["changes"]["endpoint"] == "unchanged"
            assert gw.operations(seq) == []

    asyncio.run(scenario())


def test_an_older_report_cannot_overwrite_an_ambiguous_newer_one() -> None:
    async def scenario() -> None:
        async with gateway(fault_settings(), timeout_hold=HOLD, late_apply=True) as gw:
            assert (await gw.report(report("amb", WHITE_HOUSE, 0))).status_code == 200
            # Both places exist already: the only write of the move is the endpoint's.
            empire = (await gw.report(report("x", EMPIRE_STATE, 0))).json()["locationId"]
            assert (await gw.report(report("y", SPACE_NEEDLE, 0))).status_code == 200
            gw.simulator.config.fault_rate = 1.0
            gw.simulator.config.fault_kinds = ("500",)
            gw.simulator.config.ambiguous_rate = 1.0
            newer = await gw.report(report("amb", EMPIRE_STATE, 20))
            assert newer.status_code == 503
            gw.simulator.config.fault_rate = 0.0
            older = await gw.report(report("amb", SPACE_NEEDLE, 10))
            assert older.status_code == 409
            assert older.json()["type"] == "/problems/superseded"
            await asyncio.wait_for(pipeline_of(gw).idle(), REPAIR_BOUND)
            # The newer report may have been applied: it is kept, and made certain.
            held = gw.simulator.state["endpoints"][endpoint_id_for("amb")]["locationId"]
            assert held == empire

    asyncio.run(scenario())


def test_a_dead_carrier_trips_the_breaker_and_readiness_shows_it_but_stays_ready() -> None:
    # Readiness is this pod's ability to serve, not the carrier's health (every pod shares
    # one carrier): unready, every pod would leave the Service, and the call-time location
    # query, which never needs the carrier, with them.
    async def scenario() -> None:
        settings = gateway_settings(
            upstream_max_attempts=3,
            upstream_backoff_base=0.01,
            upstream_backoff_max=0.02,
            breaker_failures=5,
            breaker_cooldown=30.0,
            emergency_query_token=Secret(QUERY_TOKEN),
        )
        async with gateway(settings) as gw:
            assert (await gw.report(report("known", WHITE_HOUSE, 0))).status_code == 200
            assert (await gw.http.get("/readyz")).status_code == 200
            gw.simulator.config.fault_rate = 1.0
            gw.simulator.config.fault_kinds = ("503",)
            gw.simulator.config.ambiguous_rate = 0.0
            answers = [await gw.report(report(f"dead-{i}", WHITE_HOUSE, 0)) for i in range(20)]
            assert {a.status_code for a in answers} == {503}
            calls = len(gw.simulator.calls)
            # Once open, the breaker refuses at once: far fewer calls than 20 reports x 3.
            assert calls <= 10, calls
            assert int(answers[-1].headers["retry-after"]) >= 1
            ready = await gw.http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() | {"circuit": "open", "upstream": "circuit open"} == ready.json()
            assert gw.metrics.registry.get_sample_value("dlr_upstream_circuit_state") == 2
            where = await gw.http.get(
                "/v1/emergency-calls/location",
                params={"to": "911", "from": phone_of("known"), "token": QUERY_TOKEN},
            )
            assert where.status_code == 200, where.text
            assert where.json()["aeui"] == "known"

    asyncio.run(scenario())
