"""`dlr-gateway serve --sandbox` as a user runs it: a real process answering the README's calls."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANDWIDTH_", "GATEWAY_"))}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--sandbox", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "Application startup complete" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        banner = log.read_text()
        admin = re.search(r"admin key:\s+(\S+)", banner)
        token = re.search(r"device token:\s+(\S+)", banner)
        assert admin and token, banner
        yield f"http://127.0.0.1:{port}", admin.group(1), token.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_readme_round_trip_against_a_real_sandbox(sandbox: tuple[str, str, str]) -> None:
    base, key, token = sandbox
    # The README shows these very calls.
    readme = README.read_text()
    assert "dlr-gateway serve --sandbox" in readme
    assert "/v1/locations" in readme and "/v1/endpoints" in readme
    admin = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        location = http.post(
            "/v1/locations",
            headers=admin,
            json={
                "description": "HQ",
                "address": {
                    "houseNumber": "1600",
                    "streetName": "PENNSYLVANIA",
                    "streetSuffix": "AVE",
                    "postDirectional": "NW",
                    "city": "WASHINGTON",
                    "stateCode": "DC",
                    "zip": "20500",
                    "country": "US",
                },
            },
        )
        assert location.status_code == 201, location.text
        location_id = location.json()["locationId"]
        endpoint = http.post(
            "/v1/endpoints",
            headers=admin,
            json={
                "alternateEndUserId": "alice-laptop",
                "callerName": "ALICE SMITH",
                "telephoneNumber": "+12025550143",
                "locationId": location_id,
            },
        )
        assert endpoint.status_code == 201, endpoint.text
        assert http.get("/v1/locations", headers=admin).json()["totalCount"] == 1
        assert http.get("/v1/endpoints", headers=admin).json()["endpoints"][0]["locationId"] == (
            location_id
        )
        report = http.post(
            "/v1/location-reports",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "alternateEndUserId": "sandbox-device-1",
                "callerName": "SANDBOX USER",
                "telephoneNumber": "+12025550143",
                "observedAt": "2026-11-27T05:00:00Z",
                "address": "350 Fifth Avenue, Suite 3000, New York, NY 10118",
            },
        )
        assert report.status_code == 200, report.text
        assert report.json()["address"]["addressLine2"] == "STE 3000"
        state = http.get("/sandbox/bandwidth/_sim/state").json()
        assert len(state["endpoints"]) == 2
        assert http.get("/readyz").json()["ready"] is True
