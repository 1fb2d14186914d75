"""The simulator behind a real server: a dropped connection is a transport error."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from gateway.simulator import Simulator, SimulatorConfig, create_simulator

from .helpers import ACCOUNT, AUTH, location_xml


@pytest.fixture
def served() -> Iterator[tuple[str, Simulator]]:
    app = create_simulator(SimulatorConfig(seed=1, ambiguous_rate=0.0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "server died"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.002)
    try:
        yield f"http://127.0.0.1:{port}", app.state.simulator
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_reset_is_a_transport_error_for_a_real_client(served: tuple[str, Simulator]) -> None:
    base, sim = served
    with httpx.Client(base_url=base + ACCOUNT, auth=AUTH, timeout=5) as client:
        assert client.post("/locations", content=location_xml()).status_code == 201
        sim.config.fault_kinds = ("reset",)
        sim.config.fault_rate = 1.0
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/locations/LOC1")
        sim.config.fault_rate = 0.0
        response = client.get("/locations/LOC1")
        assert response.status_code == 200
        assert b"<locationId>LOC1</locationId>" in response.content
        assert client.get(base + "/_sim/state").json()["locations"].keys() == {"LOC1"}
    assert [c["fault"] for c in sim.calls] == [None, "reset", None]


def test_a_client_that_hangs_up_is_logged_as_such(
    served: tuple[str, Simulator], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.simulator")
    base, sim = served
    port = int(base.rsplit(":", 1)[1])
    body = location_xml()
    head = (
        f"POST {ACCOUNT}/locations HTTP/1.1\r\nHost: sim\r\n"
        f"Authorization: Basic {base64.b64encode(':'.join(AUTH).encode()).decode()}\r\n"
        f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(head + body[: len(body) // 2])  # half the body, then hang up
    deadline = time.monotonic() + 10
    while not (sim.calls and sim.calls[-1]["disconnected"]):
        assert time.monotonic() < deadline, sim.calls
        time.sleep(0.01)
    (call,) = sim.calls
    assert (call["operation"], call["status"], call["applied"]) == ("createLocation", None, False)
    assert "simulator failed" not in caplog.text
    assert "Traceback" not in caplog.text
    assert "hung up" in caplog.text
    assert sim.state["locations"] == {}
