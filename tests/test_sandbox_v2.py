"""``dlr-gateway serve --sandbox`` honours ``BANDWIDTH_API=v2``: the v2 simulator is mounted,
and a report goes through the v2 API's address, endpoint and order."""

from __future__ import annotations

import shlex
from pathlib import Path

import httpx

from tests.test_readme import serving


def _exported(banner: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in banner.splitlines():
        line = line.strip()
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0] if value else ""
    return found


def test_the_sandbox_speaks_v2_when_told(tmp_path: Path) -> None:
    with serving(tmp_path, BANDWIDTH_API="v2", BANDWIDTH_V2_FOLLOW_TIMEOUT="4") as banner:
        env = _exported(banner)
        with httpx.Client(base_url=env["GW"], timeout=30) as http:
            answer = http.post(
                "/v1/location-reports",
                headers={"Authorization": f"Bearer {env['KEY']}"},
                json={
                    "alternateEndUserId": "sandbox-v2",
                    "callerName": "ADA LOVELACE",
                    "telephoneNumber": "+12025550143",
                    "observedAt": "2026-11-01T12:00:00Z",
                    "address": "1600 Pennsylvania Ave NW, Washington, DC 20500",
                },
            )
            assert answer.status_code in (200, 202), answer.text
            calls = http.get("/sandbox/bandwidth/_sim/calls").json()
            assert [c["operation"] for c in calls][:3] == [
                "addAddress",
                "getEndpoint",
                "addEndpoints",
            ]
            assert all(c["path"].startswith("/sandbox/bandwidth/api/v2/") for c in calls)
            state = http.get("/sandbox/bandwidth/_sim/state").json()
            assert len(state["orders"]) == 1
