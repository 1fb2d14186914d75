"""`dlr-gateway serve --sandbox` as a user runs it: a real process answering the README's calls."""

from __future__ import annotations

import contextlib
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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

README = Path(__file__).resolve().parent.parent / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(tmp_path: Path, **environ: str) -> Iterator[tuple[str, str]]:
    """``dlr-gateway serve --sandbox`` started, with ``environ`` added: its base URL and
    what it printed up to the start."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANDWIDTH_", "GATEWAY_"))}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--sandbox", "--port", str(port)],
            cwd=tmp_path,
            env=env | environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "Application startup complete" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    with serving(tmp_path) as (base, banner):
        admin = re.search(r"admin key:\s+(\S+)", banner)
        token = re.search(r"device token:\s+(\S+)", banner)
        assert admin and token, banner
        yield base, admin.group(1), token.group(1)


def test_a_sandbox_with_only_a_public_key_starts_and_says_no_token_can_be_minted(
    tmp_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with serving(tmp_path, GATEWAY_DEVICE_JWT_PUBLIC_KEY=pem.decode()) as (base, banner):
        assert "Traceback" not in banner, banner
        assert "device token:  none can be minted here" in banner, banner
        assert "GATEWAY_DEVICE_JWT_PRIVATE_KEY" in banner
        assert httpx.get(f"{base}/healthz", timeout=5, trust_env=False).status_code == 200


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
                "telephoneNumber": "+12025550101",
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
