"""A gateway killed (SIGKILL) with undelivered events delivers them once it runs again: the
outbox is in the state store (a SQLite file here), not in the process."""

from __future__ import annotations

import time
from pathlib import Path

from tests.events.receiver import Receiver
from tests.events.served import QUERY_PASSWORD, QUERY_USER, admin_client, events_environ
from tests.procs import replica, simulator, stop_all

CALLS = 6


def test_undelivered_events_survive_a_kill_and_are_delivered_after_the_restart(
    tmp_path: Path,
) -> None:
    receiver = Receiver()  # down until the gateway has been killed
    sim = simulator(tmp_path).start()
    env = events_environ(
        sim.port,
        tmp_path,
        GATEWAY_EVENT_DELIVERY_TIMEOUT="0.5",
        GATEWAY_EVENT_RETRY_MAX="1",
    )
    gw = replica("gateway", tmp_path, env)
    try:
        sim.wait_ready()
        gw.start().wait_ready()
        with admin_client(gw.base) as admin:
            hook = admin.post(
                "/v1/webhooks", json={"url": receiver.url, "eventTypes": ["emergency_call"]}
            ).json()
            receiver.secret = hook["secret"]
            for n in range(CALLS):
                answer = admin.get(
                    "/v1/emergency-calls/location",
                    params={"to": "911", "from": f"+1303555011{n}"},
                    auth=(QUERY_USER, QUERY_PASSWORD),
                )
                assert answer.status_code == 404  # unknown callers: still emergency calls
            deadline = time.monotonic() + 20
            while True:
                events = admin.get("/v1/events").json()["events"]
                tried = [e for e in events if e["deliveries"][0]["attempts"] > 0]
                if len(tried) == CALLS:
                    break
                assert time.monotonic() < deadline, events
                time.sleep(0.1)
        ids = {e["id"] for e in events}
        assert all(e["deliveries"][0]["state"] == "pending" for e in events)
        gw.kill()  # no drain, no shutdown: what was in the process is gone

        receiver.up()
        gw.start().wait_ready()
        receiver.wait_for(CALLS, timeout=30)
        assert set(receiver.events()) == ids
        assert receiver.unverified == 0
        with admin_client(gw.base) as admin:
            deadline = time.monotonic() + 10
            while any(
                e["deliveries"][0]["state"] != "delivered"
                for e in admin.get("/v1/events").json()["events"]
            ):
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        stop_all([gw, sim])
        receiver.down()
