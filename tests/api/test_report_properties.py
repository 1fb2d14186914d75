"""The report pipeline's order and cost, for any interleaving of reports (hypothesis, stateful).

A model follows what the carrier must hold. Steps send one report at a time or a burst of
concurrent ones, from a few devices at a few places, with repeated, equal (also across UTC
offsets) and out-of-order ``observedAt`` values. After every step:

- the simulator's endpoint for each device (its ``locationId`` and ``callerName``) is the
  device's newest acknowledged (200) report, and there is no endpoint for any other device;
- a 409 is only ever a report older than one acknowledged for that device, and a report at the
  newest time of its burst is never refused (equal times are applied, idempotently);
- upstream calls never exceed the floors: none for an unchanged or superseded report, and per
  report exactly what its ``changes`` say (1 to 3 calls), one ``createLocation`` per new place
  however many reports for it arrive at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.dlr.ids import endpoint_id_for
from tests.harness import (
    EMPIRE_STATE,
    SPACE_NEEDLE,
    T0,
    WHITE_HOUSE,
    WILLIS_TOWER,
    Gateway,
    gateway,
    report,
)

DEVICES = ("dev-a", "dev-b", "dev-c", "dev-d")
PLACES = (WHITE_HOUSE, EMPIRE_STATE, SPACE_NEEDLE, WILLIS_TOWER)
CALLERS = ("ALICE SMITH", "BOB JONES")
ZONES = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=2)))


@dataclass(frozen=True)
class Sent:
    device: str
    place: int
    caller: str
    seconds: int
    zone: timezone

    @property
    def observed(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)

    def body(self) -> dict[str, Any]:
        body = report(self.device, PLACES[self.place], caller=self.caller)
        body["observedAt"] = self.observed.astimezone(self.zone).isoformat()
        return body


reports = st.builds(
    Sent,
    device=st.sampled_from(DEVICES),
    place=st.integers(0, len(PLACES) - 1),
    caller=st.sampled_from(CALLERS),
    seconds=st.integers(0, 5),
    zone=st.sampled_from(ZONES),
)


def expected_operations(changes: dict[str, str]) -> list[str]:
    """The calls a report's ``changes`` cost, at the floor (DESIGN.md, step 5)."""
    calls = ["createLocation"] if changes["location"] == "created" else []
    if changes["endpoint"] == "created":
        calls += ["updateEndpoint", "createEndpoint"]  # the update finds none: 404
    elif changes["endpoint"] == "updated":
        calls += ["updateEndpoint"]
    return calls


class ReportOrder(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.stack = contextlib.AsyncExitStack()
        self.gw: Gateway = self.runner.run(self.stack.enter_async_context(gateway()))
        #: Per device: the newest acknowledged time, and (place, caller) the carrier holds.
        self.newest: dict[str, datetime] = {}
        self.held: dict[str, tuple[int, str]] = {}
        #: Places created upstream, and the location ID each one has.
        self.created: set[int] = set()
        self.location_ids: dict[int, str] = {}

    def teardown(self) -> None:
        try:
            self.runner.run(self.stack.aclose())
        finally:
            self.runner.close()

    def post(self, sent: Sent) -> httpx.Response:
        return self.runner.run(self.gw.report(sent.body()))

    def learn_location(self, sent: Sent, answer: dict[str, Any]) -> None:
        known = self.location_ids.setdefault(sent.place, answer["locationId"])
        assert answer["locationId"] == known, "one place, one location ID"
        assert len(set(self.location_ids.values())) == len(self.location_ids)

    # -- steps ---------------------------------------------------------------------------

    @rule(sent=reports)
    def one_report(self, sent: Sent) -> None:
        seq = self.gw.last_seq()
        response = self.post(sent)
        calls = self.gw.operations(seq)
        newest = self.newest.get(sent.device)

        if newest is not None and sent.observed < newest:
            assert response.status_code == 409, response.text
            problem = response.json()
            assert problem["type"] == "/problems/superseded"
            assert datetime.fromisoformat(problem["newestObservedAt"]) == newest
            assert calls == []
            return

        assert response.status_code == 200, response.text
        answer = response.json()
        self.learn_location(sent, answer)
        assert datetime.fromisoformat(answer["observedAt"]) == sent.observed
        changes = answer["changes"]
        if self.held.get(sent.device) == (sent.place, sent.caller):
            expected = {"location": "unchanged", "endpoint": "unchanged"}
        else:
            expected = {
                "location": "unchanged" if sent.place in self.created else "created",
                "endpoint": "updated" if sent.device in self.held else "created",
            }
        assert changes == expected
        assert calls == expected_operations(changes)
        assert len(calls) <= 3

        self.created.add(sent.place)
        self.held[sent.device] = (sent.place, sent.caller)
        self.newest[sent.device] = sent.observed

    @rule(burst=st.lists(reports, min_size=2, max_size=6))
    def concurrent_reports(self, burst: list[Sent]) -> None:
        seq = self.gw.last_seq()

        async def send_all() -> list[httpx.Response]:
            return list(await asyncio.gather(*(self.gw.report(s.body()) for s in burst)))

        responses = self.runner.run(send_all())
        calls = Counter(self.gw.operations(seq))
        before = dict(self.newest)

        acked: list[tuple[Sent, dict[str, Any]]] = []
        for sent, response in zip(burst, responses, strict=True):
            assert response.status_code in (200, 409), response.text
            if response.status_code == 200:
                answer = response.json()
                self.learn_location(sent, answer)
                acked.append((sent, answer))
                # Never applied over a newer report acknowledged before the burst.
                assert sent.device not in before or sent.observed >= before[sent.device]

        for device in {s.device for s in burst}:
            mine = [s for s in burst if s.device == device]
            newest_acked = max((s.observed for s, _ in acked if s.device == device), default=None)
            bar = max(
                (t for t in (before.get(device), newest_acked) if t is not None), default=None
            )
            for sent, response in zip(burst, responses, strict=True):
                if sent.device == device and response.status_code == 409:
                    # Superseded only by a report acknowledged for the same device.
                    assert bar is not None and sent.observed < bar
            latest = max(s.observed for s in mine)
            if device not in before or latest >= before[device]:
                for sent, response in zip(burst, responses, strict=True):
                    if sent.device == device and sent.observed == latest:
                        assert response.status_code == 200, response.text

        # The floors: exactly the calls the answers' changes account for, and one create
        # per new place however many reports for it arrived at once.
        changes = [answer["changes"] for _, answer in acked]
        new_places = {s.place for s, a in acked if a["changes"]["location"] == "created"}
        assert new_places.isdisjoint(self.created)
        assert calls["createLocation"] == len(new_places)
        assert calls["updateEndpoint"] == sum(c["endpoint"] != "unchanged" for c in changes)
        assert calls["createEndpoint"] == sum(c["endpoint"] == "created" for c in changes)
        assert set(calls) <= {"createLocation", "updateEndpoint", "createEndpoint"}
        changed = sum(c != {"location": "unchanged", "endpoint": "unchanged"} for c in changes)
        assert calls.total() <= 3 * changed
        for sent, answer in acked:
            if answer["changes"]["endpoint"] == "created":
                assert sent.device not in self.held
        self.created |= {s.place for s, _ in acked}

        # Which of the newest equal-time reports went last is the device lock's business:
        # the carrier holds one of them. Learn which, so later steps predict exactly.
        endpoints = self.gw.simulator.state["endpoints"]
        for device in {s.device for s, _ in acked}:
            newest_time = max(s.observed for s, _ in acked if s.device == device)
            candidates = {
                (s.place, s.caller)
                for s, _ in acked
                if s.device == device and s.observed == newest_time
            }
            endpoint = endpoints[endpoint_id_for(device)]
            now_held = next(
                (place, caller)
                for place, caller in candidates
                if self.location_ids[place] == endpoint["locationId"]
                and caller == endpoint["callerName"]
            )
            self.held[device] = now_held
            self.newest[device] = newest_time

    @rule(device=st.sampled_from(DEVICES))
    def read_back(self, device: str) -> None:
        response = self.runner.run(self.gw.http.get(f"/v1/devices/{device}/location"))
        if device not in self.held:
            assert response.status_code == 404, response.text
            return
        assert response.status_code == 200, response.text
        body = response.json()
        place, caller = self.held[device]
        assert body["locationId"] == self.location_ids[place]
        assert body["callerName"] == caller
        assert datetime.fromisoformat(body["observedAt"]) == self.newest[device]

    # -- what holds after every step -------------------------------------------------------

    @invariant()
    def carrier_holds_each_devices_newest_acknowledged_report(self) -> None:
        state = self.gw.simulator.state
        endpoints = state["endpoints"]
        assert set(endpoints) == {endpoint_id_for(d) for d in self.held}
        for device, (place, caller) in self.held.items():
            endpoint = endpoints[endpoint_id_for(device)]
            assert endpoint["alternateEndUserId"] == device
            assert endpoint["locationId"] == self.location_ids[place]
            assert endpoint["callerName"] == caller
        assert set(state["locations"]) == {self.location_ids[p] for p in self.created}


ReportOrder.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_report_order = ReportOrder.TestCase
