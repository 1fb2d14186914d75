"""The ``/_sim/`` JSON views, the Python face, the call log and the config."""

from __future__ import annotations

import json

import pytest

from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME
from gateway.simulator import SimulatorConfig

from .helpers import ACCOUNT, Harness, endpoint_xml, harness, location_xml, recipient_xml


def test_call_log_records_every_seed_request(h: Harness) -> None:
    h.post("/locations", location_xml())
    h.clock.advance(2.5)
    h.post("", endpoint_xml())
    h.get("/EP1")
    h.get("/NOPE")
    h.request("DELETE", "/locations/LOC1")
    calls = h.sim.calls
    assert [c["seq"] for c in calls] == [1, 2, 3, 4, 5]
    assert calls[0] == {
        "seq": 1,
        "time": 1000.0,
        "method": "POST",
        "path": ACCOUNT + "/locations",
        "operation": "createLocation",
        "status": 201,
        "fault": None,
        "applied": True,
        "id": "LOC1",
        "disconnected": False,
    }
    assert calls[1]["time"] == 1002.5
    assert [(c["operation"], c["status"], c["applied"], c["id"]) for c in calls[1:]] == [
        ("createEndpoint", 201, True, "EP1"),
        ("getEndpoint", 200, False, "EP1"),
        ("getEndpoint", 404, False, "NOPE"),
        ("deleteLocation", 409, False, "LOC1"),
    ]


def test_every_operation_is_named_in_the_log(h: Harness) -> None:
    h.post("/locations", location_xml())
    h.get("/locations")
    h.get("/locations/LOC1")
    h.put("/locations/LOC1", location_xml())
    h.post("", endpoint_xml())
    h.get("")
    h.get("/EP1")
    h.put("/EP1", endpoint_xml())
    h.delete("/EP1")
    h.delete("/locations/LOC1")
    h.post("/notificationRecipients", recipient_xml())
    h.get("/notificationRecipients")
    assert [(c["operation"], c["status"]) for c in h.sim.calls] == [
        ("createLocation", 201),
        ("listLocations", 200),
        ("getLocation", 200),
        ("updateLocation", 200),
        ("createEndpoint", 201),
        ("listEndpoints", 200),
        ("getEndpoint", 200),
        ("updateEndpoint", 200),
        ("deleteEndpoint", 200),
        ("deleteLocation", 200),
        ("createNotificationRecipient", 201),
        ("listNotificationRecipients", 200),
    ]


def test_sim_state_is_json_in_camel_case(h: Harness) -> None:
    h.post("/locations", location_xml())
    h.post("", endpoint_xml())
    h.post("/notificationRecipients", recipient_xml())
    response = h.run(lambda c: c.get("/_sim/state", auth=None))
    assert response.status_code == 200
    state = response.json()
    assert state == h.sim.state
    assert state["endpoints"]["EP1"] == {
        "endpointId": "EP1",
        "alternateEndUserId": "device-1",
        "callerName": "ALICE",
        "locationId": "LOC1",
        "telephoneNumber": "+19195550100",
        "activated": True,
    }
    location = state["locations"]["LOC1"]
    assert location["address"]["houseNumber"] == "1600"
    assert location["status"] == "GEOCODED"
    assert isinstance(location["latitude"], float)
    assert state["notificationRecipients"]["R1"] == {"id": "R1", "emailAddress": "noc@example.com"}


def test_sim_calls_with_since(h: Harness) -> None:
    for _ in range(3):
        h.get("/locations")
    everything = h.run(lambda c: c.get("/_sim/calls")).json()
    assert [c["seq"] for c in everything] == [1, 2, 3]
    assert [c["seq"] for c in h.run(lambda c: c.get("/_sim/calls?since=2")).json()] == [3]
    assert h.run(lambda c: c.get("/_sim/calls?since=x")).status_code == 400
    # The views themselves are not in the log.
    assert len(h.sim.calls) == 3


def test_sim_reset_clears_state_and_calls_and_changes_config(h: Harness) -> None:
    h.post("/locations", location_xml())
    body = {
        "latencyMs": 5,
        "faultRate": 0.25,
        "faultKinds": ["500", "reset"],
        "rateLimit": 10,
        "timeoutHold": 2,
        "lateApply": False,
        "ambiguousRate": 1,
    }
    response = h.run(lambda c: c.post("/_sim/reset", json=body))
    assert response.status_code == 200
    assert h.sim.state == {"endpoints": {}, "locations": {}, "notificationRecipients": {}}
    assert h.sim.calls == []
    config = h.config
    assert (config.latency_ms, config.fault_rate, config.fault_kinds) == (5, 0.25, ("500", "reset"))
    assert (config.rate_limit, config.timeout_hold, config.late_apply) == (10, 2, False)
    assert config.ambiguous_rate == 1
    assert response.json()["config"]["faultKinds"] == ["500", "reset"]


def test_sim_config_changes_faults_and_keeps_state(h: Harness) -> None:
    h.post("/locations", location_xml())
    calls = len(h.sim.calls)
    response = h.run(lambda c: c.post("/_sim/config", json={"faultRate": 1, "faultKinds": ["503"]}))
    assert response.status_code == 200
    assert response.json()["config"]["faultRate"] == 1
    assert (h.config.fault_rate, h.config.fault_kinds) == (1, ("503",))
    assert len(h.sim.state["locations"]) == 1
    assert len(h.sim.calls) == calls
    bad = h.run(lambda c: c.post("/_sim/config", json={"faultRate": 2}))
    assert bad.status_code == 400
    assert h.config.fault_rate == 1


def test_sim_reset_without_body_keeps_config(h: Harness) -> None:
    h.config.fault_rate = 0.5
    h.post("/locations", location_xml())
    assert h.run(lambda c: c.post("/_sim/reset")).status_code == 200
    assert h.sim.state["locations"] == {}
    assert h.config.fault_rate == 0.5


@pytest.mark.parametrize(
    "body",
    [
        b"[1]",
        b"{not json",
        json.dumps({"faultRate": 2}).encode(),
        json.dumps({"faultRate": "high"}).encode(),
        json.dumps({"faultKinds": ["explode"]}).encode(),
        json.dumps({"faultKinds": "500"}).encode(),
        json.dumps({"lateApply": "yes"}).encode(),
        json.dumps({"password": "x"}).encode(),
        json.dumps({"latencyMs": -1}).encode(),
        b"[" * 100_000,
    ],
)
def test_sim_reset_refuses_bad_bodies_and_changes_nothing(h: Harness, body: bytes) -> None:
    h.post("/locations", location_xml())
    before = h.config.to_json()
    response = h.run(lambda c: c.post("/_sim/reset", content=body))
    assert response.status_code in (400, 413)
    assert "error" in response.json()
    assert h.config.to_json() == before
    assert "LOC1" in h.sim.state["locations"]


def test_sim_config_never_shows_the_password(h: Harness) -> None:
    config = h.run(lambda c: c.get("/_sim/config")).json()
    assert config["accountId"] == SANDBOX_ACCOUNT_ID
    assert config["username"] == SANDBOX_USERNAME
    assert SANDBOX_PASSWORD not in json.dumps(config)
    assert SANDBOX_PASSWORD not in repr(h.config)


def test_python_reset(h: Harness) -> None:
    h.post("/locations", location_xml())
    h.sim.reset()
    assert h.sim.state["locations"] == {}
    assert h.sim.calls == []
    h.get("/locations")
    assert h.sim.calls[0]["seq"] == 1


def test_custom_credentials_and_account() -> None:
    h = harness(SimulatorConfig(account_id="55", username="u", password="p"))
    url = "/api/accounts/55/e911s/locations"
    assert h.run(lambda c: c.get(url), auth=("u", "p")).status_code == 200
    assert h.run(lambda c: c.get(url)).status_code == 401
    assert h.get("/locations").status_code == 401


def test_config_from_environ() -> None:
    config = SimulatorConfig.from_environ(
        {"BANDWIDTH_ACCOUNT_ID": "1", "BANDWIDTH_USERNAME": "me", "BANDWIDTH_PASSWORD": "pw"}
    )
    assert (config.account_id, config.username, config.password) == ("1", "me", "pw")
    default = SimulatorConfig.from_environ({"BANDWIDTH_ACCOUNT_ID": ""})
    assert (default.account_id, default.username, default.password) == (
        SANDBOX_ACCOUNT_ID,
        SANDBOX_USERNAME,
        SANDBOX_PASSWORD,
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"fault_rate": 1.5},
        {"ambiguous_rate": -0.1},
        {"latency_ms": float("nan")},
        {"fault_kinds": ("boom",)},
        {"retry_after": -1},
        {"seed": "x"},
    ],
)
def test_config_is_checked(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        SimulatorConfig(**changes)  # type: ignore[arg-type]


def test_run_serves_the_simulator_with_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from gateway.simulator import run

    seen: dict[str, object] = {}

    def fake_run(app: object, **kwargs: object) -> None:
        seen.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    config = SimulatorConfig(fault_rate=0.1)
    run("127.0.0.1", 8099, config)
    assert seen["host"] == "127.0.0.1"
    assert seen["port"] == 8099
    assert seen["app"].state.simulator.config is config  # type: ignore[attr-defined]
